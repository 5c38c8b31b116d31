import Foundation
import JobTable
import Logging

import Engine
import PostgresClient
import Ledger
import HTTPClients
import Outbox
import ZOARK

/// A migrated database with ZOARK's tables, and contexts for running agents alone.
package struct ZoarkDatabase {
    package let url: ConnectionString
    package let connection: PostgresConnection

    package init(_ label: String) async throws {
        (url, connection) = try await TestDatabase.migrated(label)
        try await connection.execute(ZoarkSchema.sql)
    }

    /// Runs SQL with `NOW` standing for the current UTC wall time, as ZOARK stores timestamps.
    package func seed(_ sql: String) async throws {
        try await connection.execute(sql.replacingOccurrences(of: "NOW", with: "(now() AT TIME ZONE 'UTC')"))
    }

    /// With `sharesLedger`, the context `runner once` builds for a job without `database:` (its
    /// rows and their effects may share one statement, over connections of its own); without,
    /// the one for a job whose product database is elsewhere.
    package func context(
        job: String, runID: Int64, mailer: Mailer? = nil, dryRun: Bool = false, now: Date = Date(),
        sharesLedger: Bool = false, environment: [String: String] = [:]
    ) -> AgentContext {
        AgentContext(
            runID: runID, job: job, database: connection, effects: Effects(connection: connection),
            clients: AgentClients(mailer: mailer, environment: environment), now: now,
            logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, dryRun: dryRun, databaseURL: url,
            sharesLedgerDatabase: sharesLedger)
    }

    /// A run row for effects to point at.
    package func newRun(_ job: String) async throws -> Int64 {
        try await connection.query(
            """
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, status, claimed_by, lease_seconds)
            VALUES ('default', $1, now(), gen_random_uuid()::text, 'manual', 'running', 'test', 30) RETURNING id
            """, [PostgresValue(job)]
        ).first?.int64("id") ?? 0
    }

    package func count(_ sql: String) async throws -> Int {
        try await connection.query(sql).first?.int("count") ?? -1
    }
}

package func smtpMailer(port: Int) -> SMTPMailer {
    SMTPMailer(
        host: "127.0.0.1", port: port, security: .none, username: nil, password: nil, from: "runner@example.com",
        client: CurlClient())
}

/// Addresses written in tests are literals known to parse.
extension EmailAddress: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) {
        try! self.init(parsing: value)
    }
}
