// Build owns the pipeline: stages, cache keys, the build directory, progress events.
public enum BuildModule {}
