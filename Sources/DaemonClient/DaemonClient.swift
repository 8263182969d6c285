// DaemonClient owns the client side of the daemon API, used by `havel initvm submit` and `havel control`.
public enum DaemonClientModule {}
