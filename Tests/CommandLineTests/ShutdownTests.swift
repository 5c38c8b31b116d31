import Foundation
import Testing

@testable import Engine
@testable import PostgresClient
@testable import Cron
@testable import Ledger
import TestSupport

/// SIGTERM means stop claiming (issue 26): with thousands of fires queued behind each other, no
/// slot is claimed after the signal; what was not claimed is left for another replica.
@Suite("Shutdown stops claims at once, real processes")
struct ShutdownTests {
    typealias Schedule = ScheduleCommandTests

    @Test(
        "SIGTERM to three replicas with 3,000 fires queued behind a held claim: no slot is claimed after the signal, and they exit within --grace plus the stop margin"
    )
    func noClaimAfterSignal() async throws {
        try await HeavyScenario.run {
            // 3,000 jobs, not the 10,000, so the suite beside it is not starved; 10,000 on three
            // replicas stopped 7.9 s after the signal (closing note of issue 26).
            let jobs = (0..<3_000).map {
                "  j\($0): {command: [\"true\"], schedule: \"*/10 * * * * *\", catchup: 1m, overlap: allow}"
            }
            let setup = try await CLISetup("shutdownclaims", jobs: "jobs:\n" + jobs.joined(separator: "\n") + "\n")
            let logs = (0..<3).map { setup.directory.url.appendingPathComponent("replica-\($0).log") }
            let replicas = try logs.map {
                try RunnerProcess.launch(["schedule", "--grace", "5s"], environment: setup.environment, log: $0)
            }
            try await withCleanup {
                for log in logs {
                    let started = try await eventually(within: .seconds(90)) {
                        Schedule.log(log).contains("scheduler started")
                    }
                    try #require(started, "a replica did not start: \(Schedule.log(log).suffix(1500))")
                }
                // Once a slot's 9,000 fires are being claimed, the claims are held at the table: each
                // replica's next statement waits for the lock, and its other fires queue behind it.
                let claiming = try await eventually(within: .seconds(60)) {
                    try await setup.count("SELECT count(*) FROM runner.runs") >= 300
                }
                try #require(claiming, "no claims: \(Schedule.log(logs[0]).suffix(1500))")
                let holder = try await PostgresConnection.connect(setup.url)
                try await holder.execute("BEGIN")
                try await holder.execute("LOCK TABLE runner.runs IN SHARE ROW EXCLUSIVE MODE")
                let held = try await eventually(within: .seconds(60)) {
                    try await setup.count(
                        """
                        SELECT count(*) FROM pg_stat_activity
                        WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%runner.runs%'
                        """) >= 3
                }
                try #require(held, "the replicas' claims never waited: \(Schedule.log(logs[0]).suffix(1500))")
                for replica in replicas { kill(replica.processIdentifier, SIGTERM) }
                let signalled = ContinuousClock.now
                // Every replica has taken the signal (and closed its gate) before the claims go on.
                for log in logs {
                    let heard = try await eventually(within: .seconds(30)) {
                        Schedule.log(log).contains("shutdown: no new claims")
                    }
                    #expect(heard, "\(Schedule.log(log).suffix(1500))")
                }
                // Claims made after the release begin after this instant; the INSERTs already waiting
                // on the lock (one per replica at most) began before it.
                let releasedAt = try await Ledger(connection: setup.connection).databaseNow()
                try await holder.execute("ROLLBACK")
                await holder.close()
                let released = ContinuousClock.now
                for (replica, log) in zip(replicas, logs) {
                    let status = try await Schedule.stop(replica, with: nil, within: .seconds(60))
                    #expect(status == 0, "\(Schedule.log(log).suffix(1500))")
                }
                let took = ContinuousClock.now - released
                let sinceSignal = ContinuousClock.now - signalled
                // --grace 5s, the 8 s stop margin for the stopped runs' ends and 3 s for the status
                // server: a replica still busy then exits anyway (16 s). 2.9 s past the grace on a
                // quiet machine, 9.6 s with two busy loops beside it. Before, a replica with 10,000
                // fires took 40 s with --grace 25s.
                #expect(
                    sinceSignal < .seconds(5 + 8 + 3 + 4), "the replicas took \(sinceSignal) to stop after the signal")
                // Without the gate, every queued fire claimed its slot after the signal (2,000 of 2,000
                // in a run with 2,000 jobs).
                let late =
                    try await setup.connection.query(
                        // Claims, not the rows a tick already under way records for slots it passed over.
                        """
                        SELECT count(*) AS n FROM runner.runs
                        WHERE started_at >= $1::timestamptz AND status NOT IN ('skipped', 'missed')
                        """, [.timestamp(releasedAt)]
                    ).first?.int("n") ?? -1
                #expect(late == 0, "\(late) slots claimed after the signal")
                let waiting =
                    try await setup.connection.query(
                        "SELECT count(*) AS n FROM runner.runs WHERE started_at < $1::timestamptz AND status <> 'missed'",
                        [.timestamp(releasedAt)]
                    ).first?.int("n") ?? -1
                print(
                    "shutdown: \(late) slots claimed after the signal (\(waiting) before); stopped \(sinceSignal) after the signal, \(took) after the release"
                )
            } cleanup: {
                for replica in replicas where replica.isRunning { kill(replica.processIdentifier, SIGKILL) }
            }
        }
    }
}
