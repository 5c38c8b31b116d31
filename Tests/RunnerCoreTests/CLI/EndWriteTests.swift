import Foundation
import Testing

@testable import RunnerCore

/// A run's end must land (issue 26): refused for a while (a revoked grant here; a full disk or a
/// failover alike), it is retried, and the run ends as what it was, not `abandoned`.
@Suite("A run's end is retried through a refusing database, real processes")
struct EndWriteTests {
    typealias Schedule = ScheduleCommandTests

    @Test("UPDATE on runner.runs revoked for 20 s: the runs that ended meanwhile are recorded succeeded and failed as they were, not abandoned")
    func revokedUpdate() async throws {
        let setup = try await CLISetup(
            "endwrite",
            jobs: """
                jobs:
                  good: {command: ["sleep", "6"], schedule: "*/2 * * * * *", overlap: allow}
                  bad: {command: ["sh", "-c", "sleep 6; exit 3"], schedule: "*/2 * * * * *", overlap: allow, retries: {max: 0}}
                """)
        let (role, restricted) = try await setup.restrictedRole("writer")
        let log = setup.directory.url.appendingPathComponent("scheduler.log")
        let scheduler = try RunnerProcess.launch(
            // Renewals every second: the leases (30 s) outlast the 20 s without UPDATE by a margin
            // a loaded machine keeps (with 5 s renewals, a lease renewed just before the revoke
            // and just after the grant came within a few seconds of its end).
            ["schedule"],
            environment: setup.environment.merging([
                "DATABASE_URL": restricted.raw, "RUNNER_HEARTBEAT_INTERVAL": "1s",
            ]) { $1 }, log: log)
        try await withCleanup {
            let ran = try await Schedule.eventually(within: .seconds(60)) {
                try await setup.count("SELECT count(*) FROM runner.runs WHERE status = 'succeeded'") >= 2
            }
            try #require(ran, "the scheduler did not run: \(Schedule.log(log).suffix(1500))")
            try await setup.connection.execute("REVOKE UPDATE ON runner.runs FROM \(role)")
            let revoked = try await Ledger(connection: setup.connection).databaseNow()
            try await Task.sleep(for: .seconds(20))
            try await setup.connection.execute("GRANT UPDATE ON runner.runs TO \(role)")
            let granted = try await Ledger(connection: setup.connection).databaseNow()
            // Claims need UPDATE too (their row lock), so none is made meanwhile; the runs under
            // way when it went end while it is gone, and are recorded once it is back.
            let settled = try await Schedule.eventually(within: .seconds(60)) {
                try await setup.connection.query(
                    "SELECT count(*) AS count FROM runner.runs WHERE status = 'running' AND started_at < $1::timestamptz",
                    [.timestamp(granted)]
                ).first?.int("count") == 0
            }
            #expect(try await Schedule.stop(scheduler) == 0, "\(Schedule.log(log).suffix(1500))")
            #expect(settled, "runs stayed running: \(Schedule.log(log).suffix(1500))")
            let rows = try await setup.connection.query(
                """
                SELECT job, status, count(*) AS n FROM runner.runs
                WHERE started_at < $1::timestamptz AND finished_at > $1::timestamptz
                GROUP BY job, status ORDER BY job, status
                """, [.timestamp(revoked)])
            var counts: [String: Int] = [:]
            for row in rows { counts["\(try row.string("job") ?? "") \(try row.string("status") ?? "")"] = try row.int("n") }
            // Before, only a lost connection was retried: these ended abandoned.
            #expect((counts["good succeeded"] ?? 0) >= 1, "\(counts) \(Schedule.log(log).suffix(3000))")
            #expect((counts["bad failed"] ?? 0) >= 1, "\(counts)")
            #expect(counts.keys.allSatisfy { $0 == "good succeeded" || $0 == "bad failed" }, "\(counts)")
            let warnings = Schedule.log(log).components(separatedBy: "cannot record the run's end yet").count - 1
            let runsDuring = counts.values.reduce(0, +)
            #expect(warnings >= 1 && warnings <= runsDuring, "\(warnings) warnings for \(runsDuring) runs")
        } cleanup: {
            if scheduler.isRunning { _ = try? await Schedule.stop(scheduler) }
        }
    }
}
