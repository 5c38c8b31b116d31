import Foundation
@testable import JobTable
import Logging
import StandardAgents
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Ledger
import TestSupport

/// `runner schedule`'s loop with an injected clock: the test says what time it is, the
/// scheduler never sleeps (issue 14).
@Suite("The scheduler, on an injected clock")
struct SchedulerTests {
    /// An instant written `2026-05-01T10:05:00Z` (fractions allowed); `distantPast` when malformed,
    /// which no expectation here meets.
    static func at(_ text: String) -> Date { InstantFormat.parse(text) ?? .distantPast }

    static let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    /// A scheduler of `jobs` (the `jobs:` body of a table) on a fresh ledger, planned from `now`.
    static func scheduler(_ label: String, jobs: String, now: Date) async throws -> (
        Scheduler, PostgresConnection, JobTable
    ) {
        let (_, connection) = try await TestDatabase.migrated(label)
        let table = try JobTableLoader(environment: [:], agents: .standard).load(text: "jobs:\n" + jobs, path: "jobs.yaml")
        let executor = RunExecutor(
            ledger: Ledger(connection: connection), agents: .standard, logger: quiet, heartbeatInterval: .seconds(1),
            environment: ["PATH": "/usr/bin:/bin"])
        let scheduler = Scheduler(jobs: table.jobs, runner: OnceRunner(executor: executor), logger: quiet, now: now)
        return (scheduler, connection, table)
    }

    static let fiveMinutes = """
          five: {command: ["true"], schedule: "*/5 * * * *", catchup: 10m}

        """

    @Test("start-up: the latest slot within catchup runs once as a catch-up; a start on time is not one")
    func startUpCatchUp() async throws {
        let (late, _, _) = try await Self.scheduler(
            "catchup", jobs: Self.fiveMinutes, now: Self.at("2026-05-01T10:07:30Z"))
        #expect(await late.nextFire == Self.at("2026-05-01T10:05:00Z"))
        #expect(
            await late.plan(now: Self.at("2026-05-01T10:07:30Z")).fires
                == [.init(job: "five", slot: Self.at("2026-05-01T10:05:00Z"), trigger: .catchup)])
        #expect(await late.plan(now: Self.at("2026-05-01T10:09:59Z")).fires.isEmpty)
        #expect(
            await late.plan(now: Self.at("2026-05-01T10:10:00Z")).fires
                == [.init(job: "five", slot: Self.at("2026-05-01T10:10:00Z"), trigger: .schedule)])

        let onTime = Self.at("2026-05-01T10:05:00Z").addingTimeInterval(0.3)
        let (prompt, _, _) = try await Self.scheduler("ontime", jobs: Self.fiveMinutes, now: onTime)
        #expect(await prompt.plan(now: onTime).fires.map(\.trigger) == [.schedule])
    }

    @Test(
        "a stall inside catchup runs the latest slot once, coalesces the ones before it within catchup and counts older ones missed; past catchup none runs"
    )
    func stalls() async throws {
        let start = Self.at("2026-05-01T10:10:00Z")
        let (scheduler, connection, _) = try await Self.scheduler("stall", jobs: Self.fiveMinutes, now: start)
        _ = await scheduler.plan(now: start)
        let woke = await scheduler.tick(now: Self.at("2026-05-01T10:31:00Z"))
        #expect(woke.fires == [.init(job: "five", slot: Self.at("2026-05-01T10:30:00Z"), trigger: .catchup)])
        #expect(
            woke.passed["five"]
                == ["10:15", "10:20", "10:25"].map { Self.at("2026-05-01T\($0):00Z") })
        await scheduler.waitForRuns()
        let rows = try await connection.query(
            "SELECT status, trigger, count(*) AS n FROM runner.runs GROUP BY status, trigger ORDER BY status")
        #expect(
            try rows.map {
                "\(try $0.string("status") ?? "") \(try $0.string("trigger") ?? "") \(try $0.int("n") ?? 0)"
            }
                == ["missed schedule 2", "skipped schedule 1", "succeeded catchup 1"])
        // 10:25 lies within the 10m catchup: served by the catch-up's run, coalesced, not missed.
        let coalesced = try await connection.query(
            "SELECT slot, outcome->>'skipped_because' AS why FROM runner.runs WHERE status = 'skipped'")
        #expect(try coalesced.first?.date("slot") == Self.at("2026-05-01T10:25:00Z"))
        #expect(try coalesced.first?.string("why") == "coalesced: served by slot 2026-05-01T10:30:00Z, run as a catch-up")
        #expect(await scheduler.missedCounts["five"] == 2)

        // Asleep again from 10:31 to 10:57: 10:55 runs, 10:35 to 10:50 are missed.
        let far = await scheduler.plan(now: Self.at("2026-05-01T10:57:00Z"))
        #expect(far.fires.map(\.slot) == [Self.at("2026-05-01T10:55:00Z")])
        #expect(far.passed["five"]?.count == 4)

        let tight = """
              tight: {command: ["true"], schedule: "*/5 * * * *", catchup: 2m}

            """
        let (short, _, _) = try await Self.scheduler("tight", jobs: tight, now: start)
        _ = await short.plan(now: start)
        let gone = await short.plan(now: Self.at("2026-05-01T10:33:00Z"))
        #expect(gone.fires.isEmpty, "10:30 is 3 minutes back, past a 2m catchup")
        #expect(gone.passed["tight"] == ["10:15", "10:20", "10:25", "10:30"].map { Self.at("2026-05-01T\($0):00Z") })
        #expect(await short.nextFire == Self.at("2026-05-01T10:35:00Z"))
    }

    @Test("a clock that jumps back fires nothing again; forward, it catches up once")
    func clockJumps() async throws {
        let start = Self.at("2026-05-01T10:10:00Z")
        let (scheduler, _, _) = try await Self.scheduler("jumps", jobs: Self.fiveMinutes, now: start)
        #expect(await scheduler.plan(now: start).fires.map(\.slot) == [start])
        #expect(await scheduler.plan(now: Self.at("2026-05-01T09:50:00Z")).fires.isEmpty)
        #expect(await scheduler.plan(now: Self.at("2026-05-01T10:12:00Z")).fires.isEmpty)
        #expect(await scheduler.nextFire == Self.at("2026-05-01T10:15:00Z"))
        #expect(await scheduler.plan(now: Self.at("2026-05-01T10:15:00.004Z")).fires.map(\.trigger) == [.schedule])
        let forward = await scheduler.plan(now: Self.at("2026-05-01T12:00:00Z"))
        #expect(forward.fires.map(\.slot) == [Self.at("2026-05-01T12:00:00Z")])
        #expect(forward.passed["five"]?.count == 20, "10:20 … 11:55 passed over by a jump of 1 h 45 min")
    }

    /// Fires over `days` days, the loop waking exactly at each next fire.
    static func week(_ scheduler: Scheduler, from start: Date, days: Int) async -> [Date] {
        var fires: [Date] = []
        let end = start.addingTimeInterval(Double(days) * 86_400)
        while let next = await scheduler.nextFire, next < end {
            fires += await scheduler.plan(now: next).fires.map(\.slot)
        }
        return fires
    }

    @Test(
        "DST weeks in New York and Lord Howe: a fixed local time fires once per local day, gaps at the first instant after"
    )
    func dstWeeks() async throws {
        let newYork = """
              spring: {command: ["true"], schedule: "30 2 * * *", timezone: America/New_York, catchup: 1m}
              autumn: {command: ["true"], schedule: "30 1 * * *", timezone: America/New_York, catchup: 1m}

            """
        let march = Self.at("2026-03-05T12:00:00Z")
        let (spring, _, _) = try await Self.scheduler("dstny", jobs: newYork, now: march)
        let springFires = await Self.week(spring, from: march, days: 7)
        #expect(springFires.contains(Self.at("2026-03-08T07:00:00Z")), "2:30 does not exist on the 8th: 3:00 EDT")
        #expect(
            springFires.contains(Self.at("2026-03-07T07:30:00Z"))
                && springFires.contains(Self.at("2026-03-09T06:30:00Z")))
        let november = Self.at("2026-10-29T12:00:00Z")
        let (autumn, _, _) = try await Self.scheduler("dstnyfall", jobs: newYork, now: november)
        let autumnFires = await Self.week(autumn, from: november, days: 7)
        #expect(autumnFires.contains(Self.at("2026-11-01T05:30:00Z")), "1:30 EDT, the first of the two")
        #expect(!autumnFires.contains(Self.at("2026-11-01T06:30:00Z")), "not again at 1:30 EST")
        for (fires, name) in [(springFires, "spring"), (autumnFires, "autumn")] {
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "America/New_York")!
            let days = fires.map { calendar.dateComponents([.year, .month, .day], from: $0) }
            #expect(fires.count == 14 && Set(days).count == 7, "\(name): two jobs, each once per local day: \(fires)")
        }

        let lordHowe = """
              gap: {command: ["true"], schedule: "15 2 * * *", timezone: Australia/Lord_Howe, catchup: 1m}
              twice: {command: ["true"], schedule: "45 1 * * *", timezone: Australia/Lord_Howe, catchup: 1m}

            """
        let april = Self.at("2026-04-01T00:00:00Z")
        let (fall, _, _) = try await Self.scheduler("dstlhfall", jobs: lordHowe, now: april)
        let fallFires = await Self.week(fall, from: april, days: 7)
        #expect(
            fallFires.filter { $0 > Self.at("2026-04-04T13:00:00Z") && $0 < Self.at("2026-04-05T13:00:00Z") }.count
                == 2,
            "on the 5th each job fires once, though 1:30-2:00 happens twice: \(fallFires)")
        #expect(fallFires.contains(Self.at("2026-04-04T14:45:00Z")), "1:45 at +11, the first occurrence")
        let october = Self.at("2026-10-01T00:00:00Z")
        let (spring2, _, _) = try await Self.scheduler("dstlhspring", jobs: lordHowe, now: october)
        let octoberFires = await Self.week(spring2, from: october, days: 7)
        #expect(octoberFires.contains(Self.at("2026-10-03T15:30:00Z")), "2:15 does not exist on the 4th: 2:30 at +11")
        #expect(octoberFires.count == 14, "\(octoberFires)")
    }

    static func holdOnce(_ marker: String) -> String {
        "[\"sh\", \"-c\", \"if [ -e \(marker) ]; then exit 0; fi; touch \(marker); exec sleep 30\"]"
    }

    @Test(
        "overlap skip, allow and replace, with the first run still running; shutdown stops what runs, recorded interrupted"
    )
    func overlap() async throws {
        for policy in ["skip", "allow", "replace"] {
            let scratch = try TemporaryDirectory()
            let marker = scratch.url.appendingPathComponent("holding").path
            let jobs = """
                  held: {command: \(Self.holdOnce(marker)), schedule: "*/5 * * * *", catchup: 10m, overlap: \(policy), retries: {max: 0}}

                """
            let first = Self.at("2026-05-01T10:00:00Z")
            let (scheduler, connection, _) = try await Self.scheduler("overlap\(policy)", jobs: jobs, now: first)
            await scheduler.tick(now: first)
            // The first run is running once its command made the marker.
            var holding = false
            for _ in 0..<300 where !holding {
                try await Task.sleep(for: .milliseconds(20))
                holding = FileManager.default.fileExists(atPath: marker)
            }
            #expect(holding, "\(policy): the first run never started")
            await scheduler.tick(now: Self.at("2026-05-01T10:05:00Z"))
            // The second slot's own run ends at once (the marker exists); wait for it alone.
            var second: String?
            for _ in 0..<500 where second == nil || second == "running" {
                try await Task.sleep(for: .milliseconds(20))
                second = try await connection.query(
                    "SELECT status FROM runner.runs WHERE slot = '2026-05-01T10:05:00Z'"
                ).first?.string("status")
            }
            let stopped = ContinuousClock.now
            await scheduler.shutdown(grace: .zero)
            #expect(ContinuousClock.now - stopped < .seconds(30), "\(policy): the stop took too long")
            let firstRow = try await connection.query(
                "SELECT status, error FROM runner.runs WHERE slot = '2026-05-01T10:00:00Z'"
            ).first
            switch policy {
            case "skip":
                #expect(second == "skipped")
                #expect(try firstRow?.string("status") == "interrupted", "shutdown interrupts the held run")
            case "allow":
                #expect(second == "succeeded", "allow runs beside the held run")
                #expect(try firstRow?.string("status") == "interrupted")
            default:
                #expect(second == "succeeded")
                #expect(try firstRow?.string("status") == "interrupted")
                #expect(try firstRow?.string("error")?.contains("replaced by slot 2026-05-01T10:05:00Z") == true)
            }
        }
    }

    @Test(
        "retries as runner once makes them; the sweep marks dead runs abandoned and gives a dead replica's due retry its successor"
    )
    func retriesAndSweep() async throws {
        let scratch = try TemporaryDirectory()
        let marker = scratch.url.appendingPathComponent("tried").path
        let jobs = """
              flaky:
                command: ["sh", "-c", "if [ -e \(marker) ]; then exit 0; fi; touch \(marker); exit 1"]
                schedule: "0 0 1 1 *"
                catchup: 400d
                retries: {max: 1, backoff: 1s, max_backoff: 1s}

            """
        let (_, probe) = try await TestDatabase.migrated("schedprobe")
        let now = try await Ledger(connection: probe).databaseNow()
        await probe.close()
        let (scheduler, connection, _) = try await Self.scheduler("schedretry", jobs: jobs, now: now)
        let plan = await scheduler.tick(now: now)
        #expect(plan.fires.map(\.trigger) == [.catchup], "this year's slot, months ago")
        await scheduler.waitForRuns()
        let attempts = try await connection.query("SELECT attempt, trigger, status FROM runner.runs ORDER BY attempt")
        #expect(
            try attempts.map {
                "\(try $0.int("attempt") ?? 0) \(try $0.string("trigger") ?? "") \(try $0.string("status") ?? "")"
            }
                == ["1 catchup failed", "2 retry succeeded"])

        // A replica died: one run mid-way (heartbeat an hour old), one failed with its retry due.
        let tight = """
              dead: {command: ["true"], schedule: "0 0 1 1 *", catchup: 1m, retries: {max: 2, backoff: 1s}}
              gone: {command: ["true"], schedule: "0 0 1 1 *", catchup: 1m}

            """
        let (sweeper, ledger, _) = try await Self.scheduler("schedsweep", jobs: tight, now: now)
        try await ledger.execute(
            """
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, claimed_by, lease_seconds,
                                     started_at, heartbeat_at, finished_at, retry_at)
            VALUES ('default', 'dead', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'once', 1, 'failed', 'other:1', 30,
                    now() - interval '2 hours', now() - interval '2 hours', now() - interval '2 hours', now() - interval '1 hour'),
                   ('default', 'gone', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'once', 1, 'running', 'other:2', 30,
                    now() - interval '2 hours', now() - interval '1 hour', NULL, NULL)
            """)
        let swept = await sweeper.tick(now: now)
        #expect(swept.fires.isEmpty, "nothing of either job is due by the schedule")
        await sweeper.waitForRuns()
        let rows = Array(
            try await ledger.query(
                "SELECT job, attempt, status, outcome->>'skipped_because' AS why FROM runner.runs ORDER BY job, attempt"
            ))
        #expect(
            try rows.map {
                "\(try $0.string("job") ?? "") \(try $0.int("attempt") ?? 0) \(try $0.string("status") ?? "")"
            }
                == ["dead 1 failed", "dead 2 skipped", "gone 1 abandoned", "gone 2 skipped"],
            "the abandoned run's retry is due at once, and past catchup too")
        #expect(try rows[1].string("why")?.hasPrefix("past catchup") == true, "its slot is months back, catchup 1m")
    }

    @Test("a reload applies from the next fire: a removed job is no longer claimed")
    func reload() async throws {
        let start = Self.at("2026-05-01T10:10:00Z")
        let two = """
              five: {command: ["true"], schedule: "*/5 * * * *"}
              other: {command: ["true"], schedule: "*/5 * * * *"}

            """
        let (scheduler, _, _) = try await Self.scheduler("reload", jobs: two, now: start)
        #expect(await scheduler.plan(now: start).fires.count == 2)
        let table = try JobTableLoader(environment: [:], agents: .standard).load(text: "jobs:\n" + Self.fiveMinutes, path: "jobs.yaml")
        await scheduler.reload(table.jobs, now: start.addingTimeInterval(1))
        #expect(await scheduler.plan(now: Self.at("2026-05-01T10:15:00Z")).fires.map(\.job) == ["five"])
        #expect(await scheduler.jobNames == ["five"])
    }
}
