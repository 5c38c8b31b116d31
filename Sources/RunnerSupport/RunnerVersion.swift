/// The version `runner --version` prints and the ledger records.
public enum RunnerVersion {
    public static let current = "0.1.0"
}
