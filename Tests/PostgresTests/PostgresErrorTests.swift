import Testing

@testable import Engine
@testable import PostgresClient
import TestSupport

@Suite("Which database errors a retry can mend")
struct PostgresErrorTests {
    @Test(
        "a restart, a failover or contention is retried; anything else is permanent and says what to do",
        arguments: [
            (PostgresError(.query, "could not serialize access", sqlState: "40001"), false),
            (PostgresError(.query, "deadlock detected", sqlState: "40P01"), false),
            (PostgresError(.query, "terminating connection due to administrator command", sqlState: "57P01"), false),
            (PostgresError(.query, "canceling statement due to statement timeout", sqlState: "57014"), false),
            (PostgresError(.query, "could not obtain lock", sqlState: "55P03"), false),
            (PostgresError(.query, "too many connections", sqlState: "53300"), false),
            (PostgresError(.query, "connection failure", sqlState: "08006"), false),
            (PostgresError(.query, "server closed the connection unexpectedly"), false),
            (PostgresError(.connection, "connection to server at \"db\" failed: Connection refused"), false),
            (PostgresError(.query, "relation \"Task\" does not exist", sqlState: "42P01"), true),
            (PostgresError(.query, "column \"lastUpdated\" does not exist", sqlState: "42703"), true),
            (PostgresError(.query, "permission denied for table Task", sqlState: "42501"), true),
            (PostgresError(.query, "syntax error", sqlState: "42601"), true),
            (PostgresError(.query, "invalid input syntax", sqlState: "22P02"), true),
            (PostgresError(.connection, "FATAL: password authentication failed for user \"app\""), true),
            (PostgresError(.connection, "FATAL: database \"zoark\" does not exist"), true),
            (PostgresError(.connection, "FATAL: role \"app\" does not exist"), true),
            (PostgresError(.decoding, "column \"amount\" is not a number"), true),
        ])
    func classification(error: PostgresError, permanent: Bool) {
        let hint = error.permanentHint(database: "DATABASE_URL")
        #expect((hint != nil) == permanent, "\(error.message): \(hint ?? "retried")")
        if let hint { #expect(hint.contains("DATABASE_URL") || hint.contains("SQLSTATE"), "\(hint)") }
    }
}
