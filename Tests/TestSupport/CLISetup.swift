import Foundation

import Engine
import PostgresClient
import Ledger

/// A folder with a jobs.yaml, a migrated database, and the environment pointing at both.
package final class CLISetup: Sendable {
    package let directory: TemporaryDirectory
    package let url: ConnectionString
    package let connection: PostgresConnection
    package let environment: [String: String]

    package init(_ label: String, jobs: String, migrate: Bool = true, extraEnvironment: [String: String] = [:]) async throws {
        directory = try TemporaryDirectory()
        let url = try await TestDatabase.fresh(label)
        connection = try await PostgresConnection.connect(url)
        if migrate { _ = try await Migrator(connection: connection).migrate() }
        self.url = url
        let config = try directory.write("jobs.yaml", jobs)
        environment = [
            "DATABASE_URL": url.raw, "RUNNER_CONFIG": config.path, "RUNNER_HOME": directory.url.path + "/home",
        ].merging(extraEnvironment) { $1 }
    }

    package func runner(_ arguments: String...) async throws -> RunnerProcess.Result {
        try await RunnerProcess.run(arguments, environment: environment, currentDirectory: directory.url)
    }

    /// `runner` on a host whose clock is `offset` off (`+2h`, `-2s`), through libfaketime.
    package func runner(clockOffset offset: String, _ arguments: String...) async throws -> RunnerProcess.Result {
        try await RunnerProcess.run(
            arguments, environment: environment.merging(["FAKETIME_DONT_FAKE_MONOTONIC": "1"]) { $1 },
            currentDirectory: directory.url, wrapper: ["/usr/bin/faketime", "-f", offset])
    }

    /// Registers the table's jobs as defined long ago (`runner migrate`, then their definition
    /// moved back a year), as a deploy of a table that has long existed finds them: a scheduler
    /// started now catches up their latest slot.
    package func defineLongAgo() async throws {
        let migrated = try await runner("migrate")
        guard migrated.status == 0 else { throw TestDatabaseError("runner migrate failed: \(migrated.stderr)") }
        try await connection.execute("UPDATE runner.jobs SET defined_at = now() - interval '400 days'")
    }

    /// A login role with only SELECT, INSERT, UPDATE and DELETE on the ledger's tables (what a
    /// test revokes from and grants back), and a TCP connection string for it.
    package func restrictedRole(_ prefix: String) async throws -> (role: String, url: ConnectionString) {
        try await TestDatabase.restrictedRole(prefix, on: connection)
    }

    package func count(_ sql: String) async throws -> Int {
        try await connection.query(sql).first?.int("count") ?? -1
    }
}
