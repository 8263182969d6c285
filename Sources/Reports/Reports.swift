// Reports owns what a build writes about itself: source.xml pins, licences, validation.txt, report.txt.
public enum ReportsModule {}
