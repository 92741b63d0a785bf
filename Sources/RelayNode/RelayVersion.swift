/// The version pdrelay reports: in the upstream `User-Agent` and by `pdrelay --version`.
public enum RelayVersion {
    public static let current = "0.1.0"
}
