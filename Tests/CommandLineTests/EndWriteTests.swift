import Foundation
import Testing

@testable import Engine
@testable import Cron
@testable import Ledger
import TestSupport

/// A run's end must land (issue 26): refused for a while (a revoked grant here; a full disk or a
/// failover alike), it is retried, and the run ends as what it was, not `abandoned`.
@Suite("A run's end is retried through a refusing database, real processes")
struct EndWriteTests {
    typealias Schedule = ScheduleCommandTests

    @Test(
        "UPDATE on runner.runs revoked for 20 s: the runs that ended meanwhile are recorded succeeded and failed as they were, not abandoned"
    )
    func revokedUpdate() async throws {
        try await HeavyScenario.run {
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
                // Leases of 60 s (renewed every 10 s): under the whole suite the REVOKE waited 10 s for
                // its lock (the renewals queued behind it), the 20 s sleep took 24 and the GRANT waited
                // too, so 30 s leases ran out and their own replica marked the runs abandoned.
                ["schedule"],
                environment: setup.environment.merging([
                    "DATABASE_URL": restricted.raw, "RUNNER_HEARTBEAT_INTERVAL": "10s",
                ]) { $1 }, log: log)
            try await withCleanup {
                let ran = try await eventually(within: .seconds(60)) {
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
                let settled = try await eventually(within: .seconds(60)) {
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
                for row in rows {
                    counts["\(try row.string("job") ?? "") \(try row.string("status") ?? "")"] = try row.int("n")
                }
                // Before, only a lost connection was retried: these ended abandoned.
                #expect((counts["good succeeded"] ?? 0) >= 1, "\(counts) \(Schedule.log(log).suffix(3000))")
                #expect((counts["bad failed"] ?? 0) >= 1, "\(counts)")
                let abandoned = try await setup.connection.query(
                    "SELECT id, started_at::text AS s, finished_at::text AS f, heartbeat_at::text AS h, coalesce(error, '') AS e FROM runner.runs WHERE status = 'abandoned'"
                ).map {
                    "\(try $0.int64("id") ?? 0) \(try $0.string("s") ?? "") \(try $0.string("h") ?? "") \(try $0.string("f") ?? "") \(try $0.string("e") ?? "")"
                }
                #expect(
                    counts.keys.allSatisfy { $0 == "good succeeded" || $0 == "bad failed" },
                    "\(counts) revoked \(revoked) granted \(granted) abandoned: \(abandoned) \(Schedule.log(log).suffix(4000))"
                )
                let warnings = Schedule.log(log).components(separatedBy: "cannot record the run's end yet").count - 1
                let runsDuring = counts.values.reduce(0, +)
                #expect(warnings >= 1 && warnings <= runsDuring, "\(warnings) warnings for \(runsDuring) runs")
            } cleanup: {
                if scheduler.isRunning { _ = try? await Schedule.stop(scheduler) }
            }
        }
    }
}
