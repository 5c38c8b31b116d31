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

    /// The connection went away under the statement: unreachable (libpq's own "server closed the
    /// connection unexpectedly" arrives as `.connection`), or the server shutting down or
    /// restarting (class 08, class 57P): what a database restart does to a statement in flight.
    /// An error this code made itself (no SQLSTATE) is not one.
    public var isConnectionLoss: Bool {
        switch kind {
        case .connection: return true
        case .decoding: return false
        case .query: return sqlState.map { $0.hasPrefix("08") || $0.hasPrefix("57P") } ?? false
        }
    }

    /// Whether a write that must land (a run's end) is worth trying again: anything the server
    /// or an operator may mend within minutes: a lost connection or restart, contention, a full
    /// disk or too few resources (class 53), an I/O error (58), a server that turned read-only in
    /// a failover (25006), a revoked privilege (42501). Not the data's own faults (classes 22
    /// and 23), a missing table or column (42), or an error of this code's own (no SQLSTATE).
    public var mayPassForWrites: Bool {
        switch kind {
        case .connection: return true
        case .decoding: return false
        case .query:
            guard let sqlState else { return false }
            if sqlState == "42501" || sqlState == "25006" || sqlState == "55P03" { return true }
            // 57014 is a statement this process cancelled itself (a stopping run): not the server's.
            if sqlState == "57014" { return false }
            return ["08", "40", "53", "57", "58", "XX"].contains(String(sqlState.prefix(2)))
        }
    }

    /// What to do about an error that retrying will not mend, or nil for one that may pass.
    /// Only what a restart, a failover or contention causes is retried: a lost connection (class
    /// 08, or no SQLSTATE), a serialization failure or deadlock (class 40), a server shutting
    /// down or a statement cancelled (class 57), a lock not available (55P03), too few resources
    /// (class 53). Everything else (a missing table, a refused login, a missing database, a
    /// column of the wrong type) fails the same way however often it runs. `database` names the
    /// setting that chose the database.
    public func permanentHint(database: String) -> String? {
        let text = message.lowercased()
        switch kind {
        case .connection:
            if text.contains("password authentication failed") || text.contains("no pg_hba.conf entry")
                || (text.contains("role") && text.contains("does not exist"))
            {
                return "the server refused the login: check the user and password in \(database)"
            }
            if text.contains("database") && text.contains("does not exist") {
                return "no such database on that server: check the database name in \(database)"
            }
            return nil
        case .decoding:
            return "a column of that database is not of the type runner reads: check that \(database) names "
                + "the product's database at the schema runner expects"
        case .query:
            guard let sqlState else { return nil }
            let transientClasses = ["08", "40", "53", "57"]
            if transientClasses.contains(String(sqlState.prefix(2))) || sqlState == "55P03" { return nil }
            switch sqlState {
            case "42P01", "3F000", "42703", "42883", "42704":
                return "the tables this job reads are not in that database: point \(database) at the "
                    + "product's database, or run `runner demo` to try runner on sample data"
            case "42501":
                return
                    "the database user lacks a privilege this job needs: grant it, or use another user in \(database)"
            case "3D000":
                return "no such database on that server: check the database name in \(database)"
            default:
                if sqlState.hasPrefix("28") { return "the server refused the login: check \(database)" }
                return "this error (SQLSTATE \(sqlState)) repeats however often the run is retried: "
                    + "fix what it names, then run the job again"
            }
        }
    }

    /// The relation or schema does not exist (the ledger has not been migrated).
    public var isUndefinedTable: Bool { sqlState == "42P01" || sqlState == "3F000" }
}
