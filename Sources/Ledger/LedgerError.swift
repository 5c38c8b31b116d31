import PostgresClient
import RunnerSupport

/// A ledger row this runner cannot read as what it must be (a status or origin it does not
/// know): a newer runner wrote it, or someone edited the table. Never read as a default.
public struct LedgerError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }

    static func unknown(_ column: String, _ value: String, row: String) -> LedgerError {
        LedgerError(
            "\(row) has \(column) \"\(displayEscaped(value))\", which this runner does not know (a newer runner wrote it?)")
    }
}

extension PostgresRow {
    /// Column `column` as one of `type`'s values; a value that is none of them (or NULL) is a
    /// ``LedgerError`` naming `row`, never a default.
    func known<Value: RawRepresentable>(_ column: String, as type: Value.Type, row: @autoclosure () -> String) throws
        -> Value where Value.RawValue == String
    {
        let text = try string(column, default: "")
        guard let value = Value(rawValue: text) else { throw LedgerError.unknown(column, text, row: row()) }
        return value
    }
}
