public enum SystemKitPlaceholder {}
