import Foundation
import Testing

@testable import Engine
@testable import PostgresClient
@testable import ZOARK
import TestSupport

/// The database is the clock (issue 13, rows 5-7): hosts whose clocks are off, through
/// libfaketime (Debian's `faketime`), claim the slot the database says is current, and agents
/// compare with the database's "now".
@Suite("The database's clock")
struct ClockTests {
    /// The hourly slot the database is in.
    static func databaseSlot(_ connection: PostgresConnection) async throws -> String {
        try await connection.query(
            #"SELECT to_char(date_trunc('hour', now() AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24:00:00"Z"') AS slot"#
        ).first?.string("slot") ?? ""
    }

    @Test("rows 5-6: runner once on hosts 2 s slow, 30 s fast and 2 h either way claims only the database's slot")
    func skewedHosts() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: "/usr/bin/faketime"), "scripts/setup installs faketime")
        let setup = try await CLISetup(
            "clockskew", jobs: "jobs:\n  hourly:\n    command: [\"sleep\", \"1\"]\n    schedule: \"0 * * * *\"\n")
        let before = try await Self.databaseSlot(setup.connection)
        let results = try await withThrowingTaskGroup(of: (String, RunnerProcess.Result).self) { group in
            for offset in ["-2s", "+30s", "-2h", "+2h"] {
                group.addTask { (offset, try await setup.runner(clockOffset: offset, "once", "hourly")) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let after = try await Self.databaseSlot(setup.connection)
        // An hour boundary passed during the test: each process rightly took the slot it saw.
        guard before == after else { return }
        #expect(results.allSatisfy { $0.1.status == 0 }, "\(results.map { "\($0.0): \($0.1.stderr)" })")
        let slots = try await setup.connection.query("SELECT slot_key FROM runner.runs").map {
            try $0.string("slot_key") ?? ""
        }
        #expect(slots == [before], "claimed \(slots), the database's slot is \(before)")
        for (offset, result) in results where !result.stdout.hasPrefix("run ") {
            #expect(result.stdout.contains("in slot \(before)"), "\(offset): \(result.stdout)")
        }
        // Each claim notes how far its host's clock was off.
        let skew = try await setup.connection.query(
            "SELECT value FROM runner.metrics WHERE name = 'clock_skew_ms'")
        #expect(skew.count == 1)
        #expect(try skew.first?.double("value").map { abs($0) >= 1500 } == true)
    }

    @Test("row 7: on a host two hours fast, a task updated 47 hours ago is not stuck")
    func agentsUseTheDatabaseClock() async throws {
        let setup = try await CLISetup(
            "clockagent",
            jobs: "jobs:\n  stuck:\n    agent: task-monitor\n    schedule: \"*/30 * * * *\"\n    catchup: 1d\n")
        try await setup.connection.execute(ZoarkSchema.sql)
        try await setup.connection.execute(
            """
            INSERT INTO "Project" ("id", "name", "updatedAt") VALUES ('p1', 'Apollo', now());
            INSERT INTO "Task" ("id", "projectId", "title", "status", "lastUpdated", "updatedAt")
            VALUES ('t47', 'p1', 'Almost stuck', 'ACTIVE', (now() AT TIME ZONE 'UTC') - interval '47 hours', now()),
                   ('t49', 'p1', 'Stuck', 'ACTIVE', (now() AT TIME ZONE 'UTC') - interval '49 hours', now());
            """)
        let result = try await setup.runner(clockOffset: "+2h", "once", "stuck", "--force")
        #expect(result.status == 0, "\(result.stderr)")
        let outcome = try await setup.connection.query("SELECT outcome->>'stuck' AS stuck FROM runner.runs").first
        #expect(try outcome?.string("stuck") == "1")
    }
}
