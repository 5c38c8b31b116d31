import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Processes
import TestSupport

/// `runner schedule` as operators run it: several replicas on one database, signals, a
/// replica killed mid-run, a reload (issue 14).
@Suite("runner schedule, real processes")
struct ScheduleCommandTests {
    /// Sends `signal` (nil: none, it was sent) and waits for the process to end (at most
    /// `limit`); its exit status, or nil if it had to be killed.
    static func stop(_ process: Process, with signal: Int32? = SIGTERM, within limit: Duration = .seconds(40))
        async throws -> Int32?
    {
        if let signal { kill(process.processIdentifier, signal) }
        let ended = try await eventually(within: limit) { !process.isRunning }
        guard ended else {
            kill(process.processIdentifier, SIGKILL)
            return nil
        }
        return process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
    }

    static func log(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

    @Test("three replicas, a */2 seconds job and an @every 1s job for 30 s: one run per slot, no gaps; SIGTERM exits 0")
    func threeReplicas() async throws {
        let setup = try await CLISetup(
            "threereplicas",
            jobs: """
                jobs:
                  even: {command: ["true"], schedule: "*/2 * * * * *", catchup: 1m, overlap: allow}
                  every: {command: ["true"], schedule: "@every 1s", catchup: 1m, overlap: allow}
                """)
        // overlap: allow, so a run slowed past a second by a loaded machine makes no slot skip:
        // what is counted is the claim, one per slot across the replicas.
        let logs = (0..<3).map { setup.directory.url.appendingPathComponent("replica-\($0).log") }
        let replicas = try logs.map { try RunnerProcess.launch(["schedule"], environment: setup.environment, log: $0) }
        try await Task.sleep(for: .seconds(30))
        for (replica, log) in zip(replicas, logs) {
            let status = try await Self.stop(replica)
            #expect(
                status == 0,
                "a replica exited \(status.map(String.init) ?? "only when killed"): \(Self.log(log).suffix(2000))")
        }
        for (job, step) in [("even", 2.0), ("every", 1.0)] {
            // A replica a loaded machine holds back past a slot coalesces it into its catch-up
            // (skipped, reason coalesced): still one row per slot, never a miss or a second run.
            let rows = try await setup.connection.query(
                """
                SELECT extract(epoch FROM slot)::float8 AS at,
                       CASE WHEN status = 'skipped' AND outcome->>'skipped_because' LIKE 'coalesced:%'
                            THEN 'coalesced' ELSE status END AS status,
                       count(*) OVER (PARTITION BY slot) AS copies
                FROM runner.runs WHERE job = $1 ORDER BY slot
                """, [PostgresValue(job)])
            let slots = try rows.map { try $0.double("at") ?? 0 }
            let statuses = try rows.map { try $0.string("status") ?? "" }
            #expect(slots.count >= 10, "\(job): only \(slots.count) slots in 30 s")
            #expect(try rows.allSatisfy { try $0.int("copies") == 1 }, "\(job): a slot ran twice")
            let gaps = zip(slots, slots.dropFirst()).filter { $1 - $0 != step }
            #expect(gaps.isEmpty, "\(job): gaps between slots \(gaps)")
            let counts = Dictionary(grouping: statuses) { $0 }.mapValues(\.count)
            #expect(
                statuses.allSatisfy { $0 == "succeeded" || $0 == "coalesced" }
                    && (counts["coalesced"] ?? 0) * 5 <= statuses.count,
                "\(job): every slot ran and succeeded (a few coalesced under load): \(counts)")
        }
        let replicasThatRan = try await setup.count("SELECT count(DISTINCT claimed_by) AS count FROM runner.runs")
        print("three replicas: runs claimed by \(replicasThatRan) of them")
    }

    @Test("SIGKILL the replica running a job: the survivor marks the run abandoned within a lease and carries on")
    func killedReplica() async throws {
        let setup = try await CLISetup(
            "killedreplica",
            jobs: """
                jobs:
                  long: {command: ["sleep", "20"], schedule: "*/5 * * * * *", catchup: 1m, retries: {max: 0}}
                  tick: {command: ["true"], schedule: "*/2 * * * * *", catchup: 1m}
                """, extraEnvironment: ["RUNNER_HEARTBEAT_INTERVAL": "1s"])
        let logs = (0..<2).map { setup.directory.url.appendingPathComponent("replica-\($0).log") }
        let replicas = try logs.map { try RunnerProcess.launch(["schedule"], environment: setup.environment, log: $0) }
        // Whichever replica claimed a run of `long` is the one to kill.
        var victim: Process?
        var runID: Int64?
        _ = try await eventually(within: .seconds(90)) {
            guard
                let row = try await setup.connection.query(
                    // Started within 10 s: its 20 s command is far from its end when the kill comes.
                    """
                    SELECT id, claimed_by FROM runner.runs
                    WHERE job = 'long' AND status = 'running' AND started_at > now() - interval '10 seconds' LIMIT 1
                    """
                ).first, let claimedBy = try row.string("claimed_by"),
                let pid = claimedBy.split(separator: ":").last.flatMap({ Int32($0) })
            else { return false }
            victim = replicas.first { $0.processIdentifier == pid }
            runID = try row.int64("id")
            return victim != nil
        }
        let killed = try #require(victim, "no replica ran the long job")
        let killedRun = try #require(runID)
        kill(killed.processIdentifier, SIGKILL)
        // Killed mid-run (its 20 s command outlives the kill by far), not after its end.
        let stillRunning = try await setup.connection.query(
            "SELECT status FROM runner.runs WHERE id = $1::bigint", [.int64(killedRun)]
        ).first?.string("status")
        #expect(stillRunning == "running", "the run ended before its replica was killed")
        let survivor = try #require(replicas.first { $0 !== killed })
        let killedAt = try await setup.connection.query("SELECT now() AS at").first?.date("at") ?? Date()
        // A lease is 30 s (six 1 s heartbeats, at least 30 s); the sweep runs every 5 s.
        let abandoned = try await eventually(within: .seconds(60)) {
            try await setup.connection.query(
                "SELECT status FROM runner.runs WHERE id = $1::bigint", [.int64(killedRun)]
            )
            .first?.string("status") == "abandoned"
        }
        #expect(abandoned, "the killed replica's run was not marked abandoned")
        // The long job runs again after it, and the other job never stopped.
        let longAgain = try await eventually(within: .seconds(30)) {
            try await setup.count(
                "SELECT count(*) FROM runner.runs WHERE job = 'long' AND status IN ('running', 'succeeded') AND id > \(killedRun)"
            )
                > 0
        }
        #expect(
            longAgain,
            "the long job did not run again: \(Self.log(logs[replicas.firstIndex { $0 === survivor }!]).suffix(2000))")
        // The other job carries on in the survivor. (If the replica died inside one of tick's own
        // runs, overlap: skip holds tick until that run too is abandoned, a lease later.)
        let tickSQL = """
            SELECT count(*) AS count FROM runner.runs
            WHERE job = 'tick' AND status = 'succeeded' AND slot > $1::timestamptz
            """
        var ticks = 0
        let carriedOn = try await eventually(within: .seconds(45)) {
            ticks = try await setup.connection.query(tickSQL, [.timestamp(killedAt)]).first?.int("count") ?? 0
            return ticks >= 5
        }
        let tickStatuses = try await setup.connection.query(
            "SELECT status, count(*) AS n FROM runner.runs WHERE job = 'tick' AND slot > $1::timestamptz GROUP BY status",
            [.timestamp(killedAt)]
        ).map { "\(try $0.string("status") ?? "") \(try $0.int("n") ?? 0)" }
        #expect(carriedOn, "the survivor ran only \(ticks) ticks after the kill: \(tickStatuses)")
        let status = try await Self.stop(survivor)
        #expect(status == 0)
    }

    @Test("SIGTERM waits for a running job and exits 0; with a short --grace the job is stopped, recorded interrupted")
    func sigterm() async throws {
        let scratch = try TemporaryDirectory()
        let started = scratch.url.appendingPathComponent("started").path
        let release = scratch.url.appendingPathComponent("release").path
        let setup = try await CLISetup(
            "schedsigterm",
            jobs: """
                jobs:
                  nap:
                    command: ["sh", "-c", "touch \(started); while [ ! -e \(release) ]; do sleep 0.1; done"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    retries: {max: 0}
                """)
        try await setup.defineLongAgo()
        let log = setup.directory.url.appendingPathComponent("scheduler.log")
        let scheduler = try RunnerProcess.launch(["schedule"], environment: setup.environment, log: log)
        let running = try await eventually(within: .seconds(30)) {
            FileManager.default.fileExists(atPath: started)
        }
        #expect(running, "the catch-up run did not start: \(Self.log(log).suffix(2000))")
        // The job ends only when released, two seconds after the signal: the scheduler waits.
        kill(scheduler.processIdentifier, SIGTERM)
        try await Task.sleep(for: .seconds(2))
        #expect(scheduler.isRunning, "it did not wait for the running job")
        FileManager.default.createFile(atPath: release, contents: nil)
        #expect(try await Self.stop(scheduler, with: nil) == 0, "\(Self.log(log).suffix(2000))")
        #expect(try await setup.count("SELECT count(*) FROM runner.runs WHERE status = 'succeeded'") == 1, "it waited")

        /// A scheduler with `--grace GRACE` running a 60 s job's catch-up: its setup, log and process.
        func sleeping(_ label: String, grace: String) async throws -> (CLISetup, URL, Process) {
            let setup = try await CLISetup(
                label,
                jobs: """
                    jobs:
                      nap: {command: ["sleep", "60"], schedule: "0 0 1 1 *", catchup: 400d, retries: {max: 0}}
                    """)
            try await setup.defineLongAgo()
            let log = setup.directory.url.appendingPathComponent("scheduler.log")
            let process = try RunnerProcess.launch(["schedule", "--grace", grace], environment: setup.environment, log: log)
            _ = try await eventually(within: .seconds(30)) {
                try await setup.count("SELECT count(*) FROM runner.runs WHERE status = 'running'") == 1
            }
            return (setup, log, process)
        }

        let (setup2, log2, impatient) = try await sleeping("schedgrace", grace: "1s")
        let signalled = ContinuousClock.now
        #expect(try await Self.stop(impatient) == 0, "\(Self.log(log2).suffix(2000))")
        #expect(ContinuousClock.now - signalled < .seconds(20), "grace 1s, then the stop (at most 5 s more)")
        let row = try await setup2.connection.query("SELECT status, error FROM runner.runs").first
        #expect(try row?.string("status") == "interrupted")
        let error = try row?.string("error") ?? ""
        #expect(error.contains("shutdown"), "\(error)")
        // The last line counts what was recorded interrupted.
        #expect(Self.log(log2).contains("interrupted=1"), "\(Self.log(log2).suffix(600))")

        // A double Ctrl-C: the second SIGINT stops the running job long before a 60 s grace, and
        // the run is counted once. (Two signals sent while the first is still pending in the
        // kernel are one, as Linux does not queue standard signals: the second is sent once the
        // first is seen.)
        let (setup3, log3, twice) = try await sleeping("schedtwice", grace: "60s")
        let doubled = ContinuousClock.now
        kill(twice.processIdentifier, SIGINT)
        let first = try await eventually(within: .seconds(20)) { Self.log(log3).contains("shutdown: no new claims") }
        #expect(first, "\(Self.log(log3).suffix(1000))")
        kill(twice.processIdentifier, SIGINT)
        #expect(try await Self.stop(twice, with: nil) == 0, "\(Self.log(log3).suffix(2000))")
        #expect(ContinuousClock.now - doubled < .seconds(30), "the second SIGINT was lost: it waited for the grace")
        #expect(try await setup3.count("SELECT count(*) FROM runner.runs WHERE status = 'interrupted'") == 1)
        #expect(Self.log(log3).contains("interrupted=1"), "\(Self.log(log3).suffix(600))")
    }

    @Test(
        "an orphan a command leaves is adopted and reaped: as the commands' subreaper, and as PID 1 of a PID namespace (where SIGTERM still stops it)"
    )
    func reapsOrphans() async throws {
        let scratch = try TemporaryDirectory()
        for asInit in [false, true] {
            let adopted = scratch.url.appendingPathComponent("adopted-\(asInit)").path
            // The grandchild has no environment (so no token: it is not killed as an escaped
            // descendant) and outlives the command; when it ends it says who adopted it. The
            // command waits until the grandchild has dropped its environment (the `started` file):
            // until then, between its fork and `env -i`'s exec, it still carries the token.
            let started = scratch.url.appendingPathComponent("started-\(asInit)").path
            let orphan = try scratch.write(
                "orphan-\(asInit).sh",
                ": > \(started); sleep 0.5; cut -d' ' -f4 /proc/$$/stat > \(adopted).tmp; mv \(adopted).tmp \(adopted)\n"
            ).path
            let setup = try await CLISetup(
                asInit ? "reaperinit" : "reaper",
                jobs: """
                    jobs:
                      leaves-one:
                        command: ["sh", "-c", "env -i /bin/sh \(orphan) >/dev/null 2>&1 & while [ ! -e \(started) ]; do sleep 0.05; done"]
                        schedule: "0 0 1 1 *"
                        catchup: 400d
                    """)
            try await setup.defineLongAgo()
            let log = setup.directory.url.appendingPathComponent("scheduler.log")
            // Without root, a user namespace of its own lets unshare make the PID namespace.
            let wrapper =
                !asInit
                ? []
                : ["/usr/bin/unshare"] + (getuid() == 0 ? [] : ["--user", "--map-root-user"])
                    + ["--pid", "--fork", "--mount-proc"]
            let launched = try RunnerProcess.launch(
                ["schedule"], environment: setup.environment, log: log, wrapper: wrapper)
            // Under unshare the runner is its child, PID 1 inside the namespace.
            var runner = launched.processIdentifier
            if asInit {
                let found = try await eventually(within: .seconds(10)) {
                    ProcessStat.children(of: launched.processIdentifier).first.map { runner = $0.pid } != nil
                }
                try #require(found, "unshare started no runner: \(Self.log(log).suffix(1500))")
                let status = (try? String(contentsOfFile: "/proc/\(runner)/status", encoding: .utf8)) ?? ""
                let namespacePIDs = status.split(separator: "\n").first { $0.hasPrefix("NSpid:") } ?? ""
                #expect(
                    namespacePIDs.split(separator: "\t").last == "1", "not PID 1 in its namespace: \(namespacePIDs)")
            }
            let parent = try await eventually(within: .seconds(30)) {
                FileManager.default.fileExists(atPath: adopted)
            }
            try #require(parent, "the orphan never ended: \(Self.log(log).suffix(1500))")
            let adopter = try String(contentsOfFile: adopted, encoding: .utf8).trimmingCharacters(
                in: .whitespacesAndNewlines)
            #expect(adopter == (asInit ? "1" : "\(runner)"), "the orphan was adopted by \(adopter), not the runner")
            // It has exited; the scheduler's sweep (every 5 s) waits for it.
            let reaped = try await eventually(within: .seconds(20)) {
                !ProcessStat.children(of: runner).contains { $0.state == "Z" }
            }
            #expect(
                reaped,
                "zombies left under the runner: \(ProcessStat.children(of: runner)) \(Self.log(log).suffix(1500))")
            #expect(try await setup.count("SELECT count(*) FROM runner.runs WHERE status = 'succeeded'") == 1)
            // A container's stop signal goes to PID 1, which the kernel spares unless it handles it.
            kill(runner, SIGTERM)
            #expect(try await Self.stop(launched, with: nil) == 0, "\(Self.log(log).suffix(1500))")
        }
    }

    @Test("a broken SIGHUP reload keeps the old schedule and logs line:col; a valid one applies")
    func reload() async throws {
        let setup = try await CLISetup(
            "schedreload",
            jobs: """
                jobs:
                  first: {command: ["true"], schedule: "*/1 * * * * *", catchup: 1m}
                """)
        let log = setup.directory.url.appendingPathComponent("scheduler.log")
        let scheduler = try RunnerProcess.launch(["schedule"], environment: setup.environment, log: log)
        let config = try #require(setup.environment["RUNNER_CONFIG"])
        func count(_ job: String) async throws -> Int {
            try await setup.count("SELECT count(*) FROM runner.runs WHERE job = '\(job)'")
        }
        #expect(try await eventually(within: .seconds(30)) { try await count("first") >= 2 })
        try "jobs:\n  first: {command: [\"true\"], schedule: \"*/1 * * * * *\"\n  broken: [\n".write(
            toFile: config, atomically: true, encoding: .utf8)
        kill(scheduler.processIdentifier, SIGHUP)
        #expect(try await eventually(within: .seconds(10)) { Self.log(log).contains("reload refused") })
        #expect(
            Self.log(log).range(of: #"jobs\.yaml:\d+:\d+"#, options: .regularExpression) != nil,
            "\(Self.log(log).suffix(1500))")
        let before = try await count("first")
        #expect(
            try await eventually(within: .seconds(20)) { try await count("first") >= before + 2 },
            "the old table stopped")

        try "jobs:\n  second: {command: [\"true\"], schedule: \"*/1 * * * * *\", catchup: 1m}\n".write(
            toFile: config, atomically: true, encoding: .utf8)
        kill(scheduler.processIdentifier, SIGHUP)
        #expect(try await eventually(within: .seconds(20)) { try await count("second") >= 2 })
        let firstAfter = try await count("first")
        try await Task.sleep(for: .seconds(3))
        #expect(try await count("first") <= firstAfter + 1, "a removed job is still claimed")
        #expect(try await Self.stop(scheduler) == 0)
    }
}

@Suite("runner backfill")
struct BackfillCommandTests {
    @Test("backfill runs each slot of the range once, oldest first; twice runs nothing more; dry run writes no run")
    func twice() async throws {
        let scratch = try TemporaryDirectory()
        let ran = scratch.url.appendingPathComponent("slots.txt").path
        let setup = try await CLISetup(
            "backfill",
            jobs: """
                jobs:
                  hourly: {command: ["sh", "-c", "echo $RUNNER_SLOT >> \(ran)"], schedule: "0 * * * *"}
                  fast: {command: ["true"], schedule: "* * * * * *"}
                """)
        let bounds = try #require(
            try await setup.connection.query(
                """
                SELECT to_char(now() AT TIME ZONE 'UTC' - interval '5 hours', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS from,
                       to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS to
                """
            ).first)
        let from = try #require(try bounds.string("from"))
        let to = try #require(try bounds.string("to"))

        let dry = try await setup.runner("backfill", "hourly", "--from", from, "--to", to, "--dry-run")
        #expect(dry.status == 0, "\(dry.stdout) \(dry.stderr)")
        #expect(dry.stdout.split(separator: "\n").filter { $0.hasSuffix("  would run") }.count == 5, "\(dry.stdout)")
        #expect(dry.stdout.contains("5 slots, 5 would run"), "\(dry.stdout)")
        #expect(try await setup.count("SELECT count(*) FROM runner.runs") == 0, "a dry run claims nothing")

        let first = try await setup.runner("backfill", "hourly", "--from", from, "--to", to)
        #expect(first.status == 0, "\(first.stdout) \(first.stderr)")
        #expect(
            first.stdout.contains("backfill of hourly: 5 slots, 5 ran, 0 already ran, 0 skipped"), "\(first.stdout)")
        let slots = try String(contentsOfFile: ran, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(slots.count == 5 && slots == slots.sorted(), "oldest first, each once: \(slots)")
        #expect(try await setup.count("SELECT count(*) FROM runner.runs WHERE trigger = 'backfill'") == 5)
        #expect(
            try await setup.count("SELECT count(*) FROM runner.metrics WHERE name = 'schedule_delay_ms'") == 0,
            "a backfill's lateness is no schedule delay")

        let second = try await setup.runner("backfill", "hourly", "--from", from, "--to", to)
        #expect(second.status == 0)
        #expect(second.stdout.contains("5 slots, 0 ran, 5 already ran"), "\(second.stdout)")
        #expect(try String(contentsOfFile: ran, encoding: .utf8).split(separator: "\n").count == 5)
        #expect(try await setup.count("SELECT count(*) FROM runner.runs") == 5)

        for (arguments, expected) in [
            (["hourly", "--from", to, "--to", from], "--from is after --to"),
            (["hourly", "--from", from, "--to", "2999-01-01T00:00:00Z"], "--to lies in the future"),
            (["hourly", "--from", "yesterday", "--to", to], "--from yesterday is not an ISO-8601 instant"),
            (["fast", "--from", from, "--to", to], "more than 10000 slots"),
        ] {
            let refused = try await RunnerProcess.run(["backfill"] + arguments, environment: setup.environment)
            #expect(refused.status == 2, "\(arguments): \(refused.stdout) \(refused.stderr)")
            #expect(refused.stderr.contains(expected), "\(arguments): \(refused.stderr)")
        }
        #expect(try await setup.count("SELECT count(*) FROM runner.runs") == 5, "refused calls write nothing")
    }
}
