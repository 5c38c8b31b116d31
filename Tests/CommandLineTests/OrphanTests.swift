import Foundation
import Testing

@testable import Engine
@testable import Cron
import TestSupport

/// A command's process group dies with its runner (issue 26): a replica killed with SIGKILL or
/// frozen with SIGSTOP past its lease leaves no copy of the work running beside the retry that
/// another replica makes.
@Suite("Commands die with their runner, real processes")
struct OrphanTests {
    typealias Schedule = ScheduleCommandTests

    /// Two replicas and a command writing `RUN_ID NANOSECONDS` each second to `stamps` for `seconds`.
    struct Stamping {
        let setup: CLISetup
        let stampFolder: TemporaryDirectory
        let stamps: URL
        let logs: [URL]
        let replicas: [Process]

        /// `untilFile`: instead, stamp twice and wait until that file (in the stamps' folder) exists.
        init(_ label: String, seconds: Int = 20, untilFile: String? = nil) async throws {
            stampFolder = try TemporaryDirectory()
            stamps = stampFolder.url.appendingPathComponent("stamps")
            let stamp = "echo \"$RUNNER_RUN_ID $(date +%s%N)\" >> \(stamps.path)"
            let stampsFolder = stampFolder.url
            let script =
                untilFile.map {
                    "\(stamp); \(stamp); while [ ! -e \(stampsFolder.appendingPathComponent($0).path) ]; do sleep 0.2; done"
                } ?? "for i in $(seq \(seconds)); do \(stamp); sleep 1; done"
            setup = try await CLISetup(
                label,
                jobs: """
                    jobs:
                      stamp:
                        command: [sh, -c, '\(script)']
                        schedule: "*/10 * * * * *"
                        retries: {max: 1, backoff: 1s}
                    """)
            let folder = setup.directory.url
            let logs = (0..<2).map { folder.appendingPathComponent("replica-\($0).log") }
            let environment = setup.environment
            replicas = try logs.map {
                try RunnerProcess.launch(["schedule", "--grace", "2s"], environment: environment, log: $0)
            }
            self.logs = logs
        }

        /// Each run's stamps, in nanoseconds of the host's clock.
        func read() -> [Int64: [Int64]] {
            let text = (try? String(contentsOf: stamps, encoding: .utf8)) ?? ""
            var runs: [Int64: [Int64]] = [:]
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ")
                guard parts.count == 2, let run = Int64(parts[0]), let at = Int64(parts[1]) else { continue }
                runs[run, default: []].append(at)
            }
            return runs
        }

        /// Once a run has written two stamps: the run and the replica running it.
        func running() async throws -> (run: Int64, replica: Process) {
            let started = try await eventually(within: .seconds(60)) {
                read().values.contains { $0.count >= 2 }
            }
            try #require(started, "no run stamped: \(Schedule.log(logs[0]).suffix(1500))")
            let row = try await setup.connection.query(
                "SELECT id, claimed_by FROM runner.runs WHERE status = 'running' ORDER BY id LIMIT 1"
            ).first
            let run = try #require(try row?.int64("id"))
            let claimedBy = try row?.string("claimed_by") ?? ""
            let replica = try #require(replicas.first { claimedBy.hasSuffix(":\($0.processIdentifier)") })
            return (run, replica)
        }

        /// Waits for a run other than `run` to stamp, then checks that none of its stamps comes
        /// before `run`'s last one; returns `run`'s last stamp.
        func expectNoOverlap(with run: Int64, within limit: Duration) async throws -> Int64 {
            let retried = try await eventually(within: limit) { read().keys.contains { $0 != run } }
            try #require(
                retried,
                "no other run stamped: \(Schedule.log(logs[0]).suffix(1500)) \(Schedule.log(logs[1]).suffix(1500))")
            // A stamp of the old run would show up within its one-second step.
            try await Task.sleep(for: .seconds(2))
            let runs = read()
            let last = try #require(runs[run]?.max())
            let firstOther = try #require(runs.filter { $0.key != run }.values.compactMap { $0.min() }.min())
            #expect(
                last < firstOther, "two copies wrote at once: the old run stamped \(last), another began \(firstOther)")
            return last
        }

        func cleanup() {
            for replica in replicas where replica.isRunning { kill(replica.processIdentifier, SIGKILL) }
        }
    }

    static func nanoseconds(_ date: Date) -> Int64 { Int64(date.timeIntervalSince1970 * 1e9) }

    @Test("kill -9 of the replica running a 20 s command: no stamp after the kill + 1 s; the retry never overlaps it")
    func killNine() async throws {
        let stamping = try await Stamping("orphankill")
        try await withCleanup {
            let (run, replica) = try await stamping.running()
            kill(replica.processIdentifier, SIGKILL)
            let killedAt = Self.nanoseconds(Date())
            // Before, the command was re-parented to PID 1 and stamped on for 20 s.
            let last = try await stamping.expectNoOverlap(with: run, within: .seconds(120))
            #expect(
                last <= killedAt + 1_000_000_000,
                "the killed runner's command stamped \(Double(last - killedAt) / 1e9) s after the kill")
            // Marked abandoned by the survivor once its lease is out (the retry may come first
            // from the next slot's settling on a loaded machine).
            let abandoned = try await eventually(within: .seconds(60)) {
                try await stamping.setup.connection.query(
                    "SELECT status FROM runner.runs WHERE id = $1", [.int64(run)]
                ).first?.string("status") == "abandoned"
            }
            #expect(abandoned)
        } cleanup: {
            stamping.cleanup()
        }
    }

    @Test(
        "frozen past its lease after its command exited 0: the run stays abandoned (another replica retried it) and keeps the command's late result"
    )
    func frozenAfterExit() async throws {
        let stamping = try await Stamping("orphanlate", untilFile: "go")
        try await withCleanup {
            let (run, replica) = try await stamping.running()
            kill(replica.processIdentifier, SIGSTOP)
            // The command ends now, its runner frozen: inside the frozen limit (20 s), so its
            // supervisor reports how it ended rather than kill it.
            FileManager.default.createFile(
                atPath: stamping.stampFolder.url.appendingPathComponent("go").path, contents: nil)
            let connection = stamping.setup.connection
            func field(_ sql: String) async throws -> String? {
                try await connection.query(sql, [.int64(run)]).first?.string("v")
            }
            // The other replica abandons the run once its lease (30 s) is out.
            let abandoned = try await eventually(within: .seconds(90)) {
                try await field("SELECT status AS v FROM runner.runs WHERE id = $1") == "abandoned"
            }
            #expect(abandoned)
            kill(replica.processIdentifier, SIGCONT)
            // Before, what the command did was lost: the row said abandoned and nothing more.
            let kept = try await eventually(within: .seconds(30)) {
                try await field(
                    "SELECT outcome->'late_result'->'outcome'->>'exit_code' AS v FROM runner.runs WHERE id = $1")
                    == "0"
            }
            #expect(
                kept,
                "\(Schedule.log(stamping.logs[0]).suffix(1500)) \(Schedule.log(stamping.logs[1]).suffix(1500))")
            #expect(try await field("SELECT status AS v FROM runner.runs WHERE id = $1") == "abandoned")
        } cleanup: {
            stamping.cleanup()
        }
    }

    @Test("SIGSTOP of the replica running a 60 s command past its lease: never two copies writing at once")
    func frozen() async throws {
        // Longer than the lease: without the supervisor it stamped on beside the retry.
        let stamping = try await Stamping("orphanstop", seconds: 60)
        try await withCleanup {
            let (run, replica) = try await stamping.running()
            kill(replica.processIdentifier, SIGSTOP)
            let stoppedAt = Self.nanoseconds(Date())
            // The lease is 30 s; the supervisor stops the command once the runner has not been
            // seen for the fence (20 s), before another replica may take the slot.
            let last = try await stamping.expectNoOverlap(with: run, within: .seconds(120))
            #expect(last < stoppedAt + 22_000_000_000)
            kill(replica.processIdentifier, SIGCONT)
            let status = try await Schedule.stop(replica, within: .seconds(30))
            #expect(status == 0)
        } cleanup: {
            stamping.cleanup()
        }
    }
}
