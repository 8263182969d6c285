// Daemon owns the HTTP server inside the initvm: project database, job queue, builds through Build, logs and files.
public enum DaemonModule {}
