/// A failure talking to Postgres. Its text never contains a password: connection errors name
/// only the server (see ``ConnectionString/redacted``) and libpq's own message.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The server could not be reached or refused us (exit code 3 territory).
        case connection
        /// A statement failed; `sqlState` says why.
        case query
        /// A value in a result did not have the expected type.
        case decoding
    }

    public let kind: Kind
    public let message: String
    /// The five-character SQLSTATE, such as `23505` for a unique violation.
    public let sqlState: String?

    public init(_ kind: Kind, _ message: String, sqlState: String? = nil) {
        self.kind = kind
        self.message = message
        self.sqlState = sqlState
    }

    public var description: String { message }

    public var isUniqueViolation: Bool { sqlState == "23505" }
    /// The relation or schema does not exist (the ledger has not been migrated).
    public var isUndefinedTable: Bool { sqlState == "42P01" || sqlState == "3F000" }
}
