import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Cron
@testable import EmbeddedPostgres
@testable import Ledger
import TestSupport

/// What a job owes, through the real binary on a real server (issue 25): nothing from before its
/// definition, a row for every slot of a gap a stop left, holes found after failed claims, and no
/// alert from a database blip.
@Suite("The definition rule and holes, real processes")
struct DefinitionRuleTests {
    typealias Schedule = ScheduleCommandTests

    /// How many `step`-second slots lie from the job's first row to its last, and which of them
    /// (HH:MM:SS, UTC) have no row.
    static func gaps(_ connection: PostgresConnection, job: String, step: Int) async throws -> (
        slots: Int, holes: [String]
    ) {
        let series = """
            FROM (SELECT min(slot) AS lo, max(slot) AS hi FROM runner.runs WHERE job = $1) AS bounds,
                 generate_series(lo, hi, make_interval(secs => $2)) AS s
            """
        let slots = try await connection.query("SELECT count(*) AS n \(series)", [PostgresValue(job), .int(step)])
            .first?.int("n") ?? 0
        let holes = try await connection.query(
            """
            SELECT to_char(s AT TIME ZONE 'UTC', 'HH24:MI:SS') AS missing \(series)
            WHERE NOT EXISTS (SELECT 1 FROM runner.runs r WHERE r.job = $1 AND r.slot = s)
            """, [PostgresValue(job), .int(step)]
        ).compactMap { try $0.string("missing") }
        return (slots, holes)
    }

    static func statuses(_ connection: PostgresConnection, job: String) async throws -> [String: Int] {
        var result: [String: Int] = [:]
        for row in try await connection.query(
            "SELECT status, count(*) AS n FROM runner.runs WHERE job = $1 GROUP BY status", [PostgresValue(job)])
        {
            result[try row.string("status") ?? "?"] = try row.int("n") ?? 0
        }
        return result
    }

    @Test("a scheduler started three minutes after a new daily job's slot runs nothing for it, and owes nothing")
    func newDailyJob() async throws {
        let utc = Calendar(identifier: .gregorian).dateComponents(
            in: TimeZone(identifier: "UTC")!, from: Date().addingTimeInterval(-180))
        let setup = try await CLISetup(
            "newdaily",
            jobs: """
                jobs:
                  daily: {command: ["true"], schedule: "\(utc.minute ?? 0) \(utc.hour ?? 0) * * *", catchup: 1h}
                  pulse: {command: ["true"], schedule: "* * * * * *", catchup: 1m, overlap: allow}
                """)
        let log = setup.directory.url.appendingPathComponent("scheduler.log")
        let scheduler = try RunnerProcess.launch(["schedule"], environment: setup.environment, log: log)
        // Three of pulse's runs: the scheduler's first ticks, and its first sweep, are behind it.
        let ticked = try await eventually(within: .seconds(60)) {
            try await setup.count("SELECT count(*) FROM runner.runs WHERE job = 'pulse' AND status = 'succeeded'") >= 3
        }
        #expect(try await Schedule.stop(scheduler) == 0, "\(Schedule.log(log).suffix(1500))")
        #expect(ticked, "the scheduler did not run pulse: \(Schedule.log(log).suffix(1500))")
        #expect(try await setup.count("SELECT count(*) FROM runner.runs WHERE job = 'daily'") == 0)
        let missed = try await setup.runner("missed", "--job", "daily", "--json")
        #expect(missed.stdout == "[]\n", "\(missed.stdout) \(missed.stderr)")
    }

    @Test(
        "a scheduler stopped for 90 s under a */5 seconds job: on restart every slot of the gap gets a row (missed past catchup, coalesced within, the latest run)"
    )
    func restartAfterStop() async throws {
        let setup = try await CLISetup(
            "ninetystop",
            jobs: """
                jobs:
                  five: {command: ["true"], schedule: "*/5 * * * * *", catchup: 1m, overlap: allow}
                """)
        let log = setup.directory.url.appendingPathComponent("scheduler.log")
        let first = try RunnerProcess.launch(["schedule"], environment: setup.environment, log: log)
        let ran = try await eventually(within: .seconds(60)) {
            try await setup.count("SELECT count(*) FROM runner.runs WHERE job = 'five'") >= 2
        }
        #expect(try await Schedule.stop(first) == 0, "\(Schedule.log(log).suffix(1500))")
        try #require(ran, "five never ran: \(Schedule.log(log).suffix(1500))")
        let stoppedAt = try await Ledger(connection: setup.connection).databaseNow()
        try await Task.sleep(for: .seconds(90))
        let second = try RunnerProcess.launch(["schedule"], environment: setup.environment, log: log)
        // The gap is settled when a slot after the restart has run and no slot before it lacks a row.
        let settled = try await eventually(within: .seconds(60)) {
            let after = try await setup.connection.query(
                "SELECT count(*) AS n FROM runner.runs WHERE job = 'five' AND slot > $1::timestamptz + interval '90 s'",
                [.timestamp(stoppedAt)]
            ).first?.int("n") ?? 0
            guard after >= 2 else { return false }
            return try await Self.gaps(setup.connection, job: "five", step: 5).holes.isEmpty
        }
        #expect(try await Schedule.stop(second) == 0, "\(Schedule.log(log).suffix(1500))")
        let (slots, holes) = try await Self.gaps(setup.connection, job: "five", step: 5)
        #expect(settled && holes.isEmpty, "slots without a row: \(holes)")
        #expect(slots >= 20)
        let statuses = try await Self.statuses(setup.connection, job: "five")
        // 90 s of 5 s slots: those older than the 1m catchup missed, the rest coalesced into one run.
        #expect((3...9).contains(statuses["missed"] ?? 0), "\(statuses)")
        #expect((8...13).contains(statuses["skipped"] ?? 0), "\(statuses)")
        #expect(
            try await setup.count(
                "SELECT count(*) FROM runner.runs WHERE job = 'five' AND status = 'skipped' AND outcome->>'skipped_because' LIKE 'coalesced:%'"
            ) == statuses["skipped"] ?? -1)
        // One run for the restart's slot: a catch-up, or on time when the start fell on a slot.
        #expect(try await setup.count("SELECT count(*) FROM runner.runs WHERE trigger = 'catchup'") <= 1)
        #expect(
            try await setup.count(
                "SELECT count(*) FROM (SELECT slot FROM runner.runs GROUP BY slot HAVING count(*) > 1) AS twice") == 0)
    }

    @Test("claims refused for 30 s (a role without INSERT on runner.runs) leave holes that runner missed then lists")
    func refusedClaims() async throws {
        let setup = try await CLISetup(
            "refusedclaims",
            jobs: """
                jobs:
                  second: {command: ["true"], schedule: "* * * * * *", catchup: 1m, overlap: allow}
                """)
        let (role, restricted) = try await setup.restrictedRole("claimer")
        let environment = setup.environment.merging(["DATABASE_URL": restricted.raw]) { $1 }
        let log = setup.directory.url.appendingPathComponent("scheduler.log")
        let port = try EmbeddedPostgres.freePort()
        let health = "http://127.0.0.1:\(port)/health"
        let scheduler = try RunnerProcess.launch(
            ["schedule", "--http", "127.0.0.1:\(port)"], environment: environment, log: log)
        try await withCleanup {
            let ran = try await eventually(within: .seconds(60)) {
                try await setup.count("SELECT count(*) FROM runner.runs WHERE job = 'second'") >= 3
            }
            try #require(ran, "the scheduler did not run: \(Schedule.log(log).suffix(1500))")
            try await setup.connection.execute("REVOKE INSERT ON runner.runs FROM \(role)")
            let revokedClock = ContinuousClock.now
            let revoked = try await Ledger(connection: setup.connection).databaseNow()
            // The database answers, but no slot can be claimed: /health says so.
            let failing = try await eventually(within: .seconds(25)) {
                let (status, body) = try await StatusServerTests.get(health)
                return status == 503 && body.contains("slots are failing")
            }
            #expect(failing, "/health did not report the failing claims: \(Schedule.log(log).suffix(1500))")
            try await Task.sleep(for: max(.zero, .seconds(30) - (ContinuousClock.now - revokedClock)))
            try await setup.connection.execute("GRANT INSERT ON runner.runs TO \(role)")
            let recovered = try await eventually(within: .seconds(25)) {
                try await StatusServerTests.get(health).0 == 200
            }
            #expect(recovered, "/health stayed unhealthy after the grant")
            let granted = try await Ledger(connection: setup.connection).databaseNow()
            // Once the last refused slot is past its 1m catchup, the holes are missed slots.
            try await Task.sleep(for: .seconds(62))
            #expect(try await Schedule.stop(scheduler) == 0, "\(Schedule.log(log).suffix(1500))")
            let missed = try await setup.runner("missed", "--job", "second", "--json")
            guard case .array(let items)? = JSONValue.parse(missed.stdout) else {
                Issue.record("missed --json printed \(missed.stdout) \(missed.stderr)")
                return
            }
            let refused = items.compactMap { $0["slot"]?.stringValue.flatMap(InstantFormat.parse) }.filter {
                $0 > revoked.addingTimeInterval(1) && $0 < granted.addingTimeInterval(-1)
            }
            // About 30 refused claims; a loaded machine may have claimed a slot late, before the revoke.
            #expect(refused.count >= 25, "\(items.count) missed: \(missed.stdout.prefix(600))")
            let (_, holes) = try await Self.gaps(setup.connection, job: "second", step: 1)
            #expect(holes.isEmpty, "slots left without a row: \(holes)")
        } cleanup: {
            if scheduler.isRunning { _ = try? await Schedule.stop(scheduler) }
        }
    }

    @Test("Postgres restarted under an every-second job: no slot missed, no alert, no slot without a row")
    func databaseBlip() async throws {
        let server = try await TestHTTPServer(routes: ["POST /hook": ["status": 200]], hmacSecret: "whsec-blip-0123")
        let directory = try TemporaryDirectory()
        // Durable commits (not the fast test settings): an immediate restart keeps what was committed.
        let cluster = EmbeddedPostgres(home: directory.url.appendingPathComponent("pg"))
        try await cluster.start()
        try await withCleanup {
            let url = cluster.connectionString()
            let connection = try await PostgresConnection.connect(url)
            _ = try await Migrator(connection: connection).migrate()
            await connection.close()
            let config = try directory.write(
                "jobs.yaml",
                """
                jobs:
                  second:
                    command: ["true"]
                    schedule: "* * * * * *"
                    overlap: allow
                    notify: [{webhook: "\(server.baseURL)/hook"}]
                """)
            let environment = [
                "DATABASE_URL": url.raw, "RUNNER_CONFIG": config.path, "WEBHOOK_SECRET": "whsec-blip-0123",
            ]
            let log = directory.url.appendingPathComponent("scheduler.log")
            let scheduler = try RunnerProcess.launch(["schedule"], environment: environment, log: log)
            func count(_ sql: String) async throws -> Int {
                let check = try await PostgresConnection.connect(url)
                let count = try await check.query(sql).first?.int("count") ?? -1
                await check.close()
                return count
            }
            let ran = try await eventually(within: .seconds(60)) {
                try await count("SELECT count(*) FROM runner.runs WHERE status = 'succeeded'") >= 3
            }
            #expect(ran, "\(Schedule.log(log).suffix(1500))")
            let restart = try await FaultTests.restartImmediately(cluster)
            #expect(restart.exitCode == 0, "\(restart.stderrTail)")
            let restartedAt = Date()
            // Runs go on after the restart: five slots' worth.
            let resumed = try await eventually(within: .seconds(60)) {
                try await count(
                    "SELECT count(*) FROM runner.runs WHERE status = 'succeeded' AND started_at > '\(PostgresTimestamp.format(restartedAt))'"
                ) >= 5
            }
            #expect(try await Schedule.stop(scheduler) == 0, "\(Schedule.log(log).suffix(1500))")
            #expect(resumed, "no runs after the restart: \(Schedule.log(log).suffix(1500))")
            #expect(try await count("SELECT count(*) FROM runner.runs WHERE status = 'missed'") == 0)
            #expect(try await count("SELECT count(*) FROM runner.effects") == 0, "a notification was recorded")
            #expect(try server.requests().isEmpty)
            let check = try await PostgresConnection.connect(url)
            let (_, holes) = try await Self.gaps(check, job: "second", step: 1)
            await check.close()
            #expect(holes.isEmpty, "slots without a row: \(holes) \(Schedule.log(log).suffix(3000))")
        } cleanup: {
            try? await cluster.stop()
        }
    }
}
