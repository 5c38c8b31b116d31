import Foundation
import Testing

@testable import Ledger
@testable import PostgresClient
import TestSupport

/// A ledger row this runner cannot read (a status a newer runner wrote, or someone's edit) is
/// outside input: a clear error naming the row, never read as a default.
@Suite("Ledger rows this runner does not know")
struct UnknownRowTests {
    @Test("a run whose status this runner does not know: history says which run and exits 1, escaped; never read as failed")
    func unknownStatus() async throws {
        let setup = try await CLISetup(
            "unknownstatus", jobs: "jobs:\n  job:\n    command: [\"true\"]\n    schedule: \"@hourly\"\n")
        #expect(try await setup.runner("once", "job", "--force").status == 0)
        try await setup.connection.execute(
            """
            ALTER TABLE runner.runs DROP CONSTRAINT runs_status_check;
            UPDATE runner.runs SET status = E'resting\\x1b[2J'
            """)
        let id = try #require(try await setup.connection.query("SELECT id FROM runner.runs").first?.int64("id"))
        let history = try await setup.runner("history")
        #expect(history.status == 1, "\(history.stdout)")
        #expect(
            history.stderr.contains(
                "error: run \(id) has status \"resting\\x1B[2J\", which this runner does not know"),
            "\(history.stderr)")
        #expect(!history.stderr.contains("\u{1B}") && !history.stdout.contains("failed"))
    }
}
