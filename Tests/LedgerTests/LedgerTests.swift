import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Ledger
import TestSupport

@Suite("Ledger against a real PostgreSQL")
struct LedgerTests {
    @Test("migrate creates the schema once; running it again changes nothing")
    func migrateTwice() async throws {
        let url = try await TestDatabase.fresh("migrate")
        let connection = try await PostgresConnection.connect(url)
        let migrator = Migrator(connection: connection)
        #expect(try await migrator.currentVersion() == 0)
        let first = try await migrator.migrate()
        #expect(first.applied == Migration.all.map(\.version))
        let second = try await migrator.migrate()
        #expect(second.applied.isEmpty)
        #expect(second.version == Migration.latestVersion)
        let tables = try await connection.query(
            """
            SELECT count(*) AS n FROM information_schema.tables
            WHERE table_schema = 'runner'
              AND table_name IN ('runs', 'effects', 'metrics', 'schema_migrations', 'jobs', 'job_summary', 'daily_metrics')
            """)
        #expect(try tables.first?.int("n") == 7)
    }

    @Test(
        "the summary lists the job table's jobs: a job removed from the table leaves it, its runs stay; one job's registration drops nothing"
    )
    func summaryFollowsTheTable() async throws {
        let url = try await TestDatabase.fresh("summarytable")
        let connection = try await PostgresConnection.connect(url)
        _ = try await Migrator(connection: connection).migrate()
        let ledger = Ledger(connection: connection)
        let now = try await ledger.databaseNow()
        func job(_ name: String) -> (String, String, String, Date?) { (name, "@daily", "UTC", nil) }
        try await ledger.registerJobs([job("kept"), job("removed")], wholeTable: true)
        for name in ["kept", "removed"] {
            guard case .claimed(let id) = try await ledger.claim(claimRequest(name, slot: now)) else {
                Issue.record("no claim for \(name)")
                return
            }
            try await ledger.finish(
                runID: id, job: name, status: .succeeded, durationMs: 5, outcome: nil, error: nil, metrics: [])
        }
        func listed() async throws -> [String] {
            try await connection.query("SELECT job FROM runner.job_summary ORDER BY job").map {
                try $0.string("job") ?? ""
            }
        }
        #expect(try await listed() == ["kept", "removed"])
        // `runner once` of a new job registers that job alone: the others stay.
        try await ledger.registerJobs([job("added")])
        #expect(try await listed() == ["added", "kept", "removed"])
        // The whole table without "removed" and "added" (migrate, status, schedule): they leave the summary.
        try await ledger.registerJobs([job("kept")], wholeTable: true)
        #expect(try await listed() == ["kept"])
        #expect(
            try await connection.query("SELECT count(*) AS n FROM runner.runs WHERE job = 'removed'").first?.int("n")
                == 1)
        let summary = try #require(try await ledger.summaries(jobs: ["kept"])["kept"])
        #expect(summary.lastStatus == .succeeded)
        await connection.close()
    }

    @Test("a ledger at version 1 is brought up to date, its effects kept, only pending ones indexed by status")
    func upgradeFromVersionOne() async throws {
        let url = try await TestDatabase.fresh("migrateupgrade")
        let connection = try await PostgresConnection.connect(url)
        let old = try await Migrator(connection: connection, migrations: [.v0001CreateLedger]).migrate()
        #expect(old.version == 1)
        try await connection.execute(
            """
            INSERT INTO runner.effects (kind, key, status) VALUES
                ('email', 'a', 'pending'), ('email', 'b', 'sent'), ('insight', 'c', 'pending');
            """)
        let upgrade = try await Migrator(connection: connection).migrate()
        #expect(upgrade.applied == Migration.all.map(\.version).filter { $0 > 1 })
        #expect(upgrade.version == Migration.latestVersion)
        let indexes = try await connection.query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'runner' AND tablename = 'effects'")
        let names = Set(try indexes.compactMap { try $0.string("indexname") })
        #expect(!names.contains("effects_status"))
        let pending = try #require(try indexes.first { try $0.string("indexname") == "effects_pending" })
        #expect(try pending.string("indexdef")?.contains("WHERE (status = 'pending'::text)") == true)
        #expect(try await connection.query("SELECT key FROM runner.effects ORDER BY key").count == 3)
        // Finding a kind's pending effects uses the partial index.
        try await connection.execute("SET enable_seqscan = off")
        let plan = try await connection.query(
            "EXPLAIN SELECT id FROM runner.effects WHERE kind = 'email' AND status = 'pending' ORDER BY id LIMIT 10")
        #expect(try plan.contains { try $0.string("QUERY PLAN")?.contains("effects_pending") == true })
        await connection.close()
    }

    @Test("eight replicas migrating at the same moment apply each migration exactly once")
    func migrateConcurrently() async throws {
        let url = try await TestDatabase.fresh("migrateconcurrent")
        let connections = try await withThrowingTaskGroup(of: PostgresConnection.self) { group in
            for _ in 0..<8 { group.addTask { try await PostgresConnection.connect(url) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let reports = try await withThrowingTaskGroup(of: Migrator.Report.self) { group in
            for connection in connections { group.addTask { try await Migrator(connection: connection).migrate() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(reports.filter { !$0.applied.isEmpty }.count == 1)
        #expect(reports.flatMap(\.applied).sorted() == Migration.all.map(\.version))
        let rows = try await connections[0].query("SELECT count(*) AS n FROM runner.schema_migrations")
        #expect(try rows.first?.int("n") == Migration.all.count)
    }

    @Test("a slot is claimed once; the second claim sees the first run")
    func claimTwice() async throws {
        let (_, connection) = try await TestDatabase.migrated("claimtwice")
        let ledger = Ledger(connection: connection)
        let slot = try #require(InstantFormat.parse("2026-11-22T04:30:00Z"))
        let first = try await ledger.claim(claimRequest("stuck-tasks", slot: slot))
        guard case .claimed(let runID) = first else {
            Issue.record("first claim was \(first)")
            return
        }
        try await ledger.finish(
            runID: runID, job: "stuck-tasks", status: .succeeded, durationMs: 5, outcome: ["found": 3], error: nil,
            metrics: [Metric("found", 3)])
        let second = try await ledger.claim(claimRequest("stuck-tasks", slot: slot))
        #expect(second == .taken(runID: runID, status: .succeeded))
        let record = try #require(try await ledger.run(id: runID))
        #expect(record.slot == slot)
        #expect(record.slotKey == "2026-11-22T04:30:00Z")
        #expect(record.outcome == ["found": 3])
        #expect(record.status == .succeeded)
    }

    @Test("eight connections racing for one slot: exactly one wins")
    func claimRace() async throws {
        let (url, _) = try await TestDatabase.migrated("claimrace")
        let slot = try #require(InstantFormat.parse("2026-11-22T05:00:00Z"))
        let results = try await withThrowingTaskGroup(of: Ledger.ClaimResult.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    let ledger = Ledger(connection: try await PostgresConnection.connect(url))
                    return try await ledger.claim(claimRequest("race", slot: slot))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let winners = results.filter { if case .claimed = $0 { true } else { false } }
        #expect(winners.count == 1)
        #expect(results.count == 8)
    }

    @Test("overlap skip: a new slot while a live run exists is recorded as skipped")
    func overlapSkip() async throws {
        let (_, connection) = try await TestDatabase.migrated("overlap")
        let ledger = Ledger(connection: connection)
        let first = try #require(InstantFormat.parse("2026-11-22T06:00:00Z"))
        guard case .claimed(let liveID) = try await ledger.claim(claimRequest("slow", slot: first)) else {
            Issue.record("first slot not claimed")
            return
        }
        let second = first.addingTimeInterval(60)
        let skipped = try await ledger.claim(claimRequest("slow", slot: second))
        guard case .skipped(let skippedID, let live) = skipped else {
            Issue.record("second slot was \(skipped)")
            return
        }
        #expect(live == liveID)
        let record = try #require(try await ledger.run(id: skippedID))
        #expect(record.status == .skipped)
        #expect(record.outcome == ["skipped_because": .string("run \(liveID) is still running")])
        // With overlap allowed the third slot runs beside the live one.
        let third = try await ledger.claim(claimRequest("slow", slot: second.addingTimeInterval(60), skip: false))
        if case .claimed = third {} else { Issue.record("overlap allow was \(third)") }
    }

    @Test("a claim with notAfter is refused on the database's clock once that instant passed, and writes nothing")
    func notAfter() async throws {
        let (_, connection) = try await TestDatabase.migrated("notafter")
        let ledger = Ledger(connection: connection)
        let now = try await ledger.databaseNow()
        let slot = now.addingTimeInterval(-30)
        for skip in [true, false] {
            var late = claimRequest("retry-\(skip)", slot: slot, key: "k#2", skip: skip)
            late.notAfter = now.addingTimeInterval(-1)
            #expect(try await ledger.claim(late) == .tooLate)
            #expect(
                try await connection.query("SELECT 1 FROM runner.runs WHERE job = $1", [PostgresValue(late.job)])
                    .count == 0)
            var inTime = late
            inTime.notAfter = now.addingTimeInterval(3600)
            if case .claimed = try await ledger.claim(inTime) {} else { Issue.record("in time was not claimed") }
            // Taken stays taken whatever the deadline says.
            let claimed = try #require(try await ledger.latestAttempt(job: late.job, slot: slot))
            #expect(try await ledger.claim(late) == .taken(runID: claimed.id, status: .running))
        }
    }

    @Test("a run whose heartbeat is older than its lease is abandoned, and the job may run again")
    func abandoned() async throws {
        let (_, connection) = try await TestDatabase.migrated("abandoned")
        let ledger = Ledger(connection: connection)
        let slot = try #require(InstantFormat.parse("2026-11-22T07:00:00Z"))
        guard case .claimed(let runID) = try await ledger.claim(claimRequest("crashy", slot: slot)) else {
            Issue.record("not claimed")
            return
        }
        #expect(try await ledger.heartbeat(runID: runID))
        #expect(try await ledger.markAbandoned(job: "crashy") == 0)
        try await connection.query(
            "UPDATE runner.runs SET heartbeat_at = now() - interval '5 minutes' WHERE id = $1::bigint", [.int64(runID)])
        let next = try await ledger.claim(claimRequest("crashy", slot: slot.addingTimeInterval(60)))
        if case .claimed = next {} else { Issue.record("after abandonment the next slot was \(next)") }
        let record = try #require(try await ledger.run(id: runID))
        #expect(record.status == .abandoned)
        #expect(record.error?.contains("no heartbeat from test:1") == true)
        #expect(try await ledger.heartbeat(runID: runID) == false)
    }

    @Test("sessions are UTC even when the server's TimeZone is not")
    func sessionTimeZone() async throws {
        let (_, connection) = try await TestDatabase.migrated("timezone")
        #expect(try await connection.query("SHOW TimeZone").first?.string("TimeZone") == "UTC")
        let server = try await connection.query("SELECT reset_val FROM pg_settings WHERE name = 'TimeZone'")
        if ProcessInfo.processInfo.environment["DATABASE_URL"] == nil {
            #expect(try server.first?.string("reset_val") == "America/New_York")
        }
        let instant = Date(timeIntervalSince1970: 1_795_000_000.25)
        let row = try await connection.query("SELECT $1::timestamptz AS t", [.timestamp(instant)])
        #expect(try row.first?.date("t") == instant)
    }

    @Test("row 8: the summary counts real runs per slot; dry, skipped and missed rows have their own columns")
    func summaryMeansWhatItSays() async throws {
        let (_, connection) = try await TestDatabase.migrated("summaryreal")
        let ledger = Ledger(connection: connection)
        // The summary lists the job table's jobs (runner.jobs).
        try await ledger.registerJobs([("sum", "@daily", "UTC", nil)])
        // In insertion order (each started a second after the last): slot A fails then its retry
        // succeeds; slot B fails; a dry run succeeds; a slot is skipped; one is missed.
        try await connection.execute(
            """
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, dry_run, claimed_by, lease_seconds,
                                     started_at, finished_at, duration_ms, outcome, origin)
            VALUES
              ('default', 'sum', now(), 'A', 'once', 1, 'failed', false, 'h:1', 30, now() - interval '60 s', now() - interval '59 s', 100, NULL, 'schedule'),
              ('default', 'sum', now(), 'A#2', 'retry', 2, 'succeeded', false, 'h:1', 30, now() - interval '50 s', now() - interval '49 s', 200, NULL, 'schedule'),
              ('default', 'sum', now(), 'B', 'once', 1, 'failed', false, 'h:1', 30, now() - interval '40 s', now() - interval '39 s', 300, NULL, 'schedule'),
              ('default', 'sum', now(), 'dry-run:x', 'manual', 1, 'succeeded', true, 'h:1', 30, now() - interval '30 s', now() - interval '29 s', 5, NULL, 'dry_run'),
              ('default', 'sum', now(), 'C', 'once', 1, 'skipped', false, 'h:1', 30, now() - interval '20 s', now() - interval '20 s', 0,
               '{"skipped_because": "run 3 is still running"}', 'schedule'),
              ('default', 'sum', now() - interval '2 hours', 'D', 'once', 1, 'missed', false, 'h:1', 1, now() - interval '10 s', now() - interval '10 s', 0, NULL, 'schedule')
            """)
        let summary = try #require(try await ledger.summaries(jobs: ["sum"])["sum"])
        // Per slot, the last attempt decides: A succeeded, B failed.
        #expect(summary.successRate7d == 0.5)
        // The last real run, not the dry run, the skip or the miss.
        #expect(summary.lastStatus == .failed)
        #expect(summary.p50DurationMs == 200)
        let lastSuccess = try #require(summary.lastSuccessAt)
        let lastStarted = try #require(summary.lastStartedAt)
        #expect(lastSuccess < lastStarted, "the last success is A's retry, before B started, not the dry run")
        #expect(summary.lastSkipReason == "run 3 is still running")
        #expect(summary.lastSkippedAt != nil)
        #expect(summary.missed7d == 1)
    }

    @Test("metrics and the review views")
    func metricsAndViews() async throws {
        let (_, connection) = try await TestDatabase.migrated("views")
        let ledger = Ledger(connection: connection)
        let base = try #require(InstantFormat.parse("2026-11-22T08:00:00Z"))
        for (index, status) in [RunStatus.succeeded, .succeeded, .failed, .succeeded].enumerated() {
            guard
                case .claimed(let id) = try await ledger.claim(
                    claimRequest("viewed", slot: base.addingTimeInterval(Double(index) * 60)))
            else { continue }
            try await ledger.finish(
                runID: id, job: "viewed", status: status, durationMs: Int64(100 * (index + 1)), outcome: nil,
                error: status == .failed ? "boom" : nil,
                metrics: [Metric("found", Double(index)), Metric("emails_sent", 1)])
        }
        try await ledger.registerJobs([("viewed", "* * * * *", "UTC", base.addingTimeInterval(3600))])
        let summary = try #require(try await ledger.summaries(jobs: ["viewed"])["viewed"])
        #expect(summary.lastStatus == .succeeded)
        #expect(summary.successRate7d == 0.75)
        #expect(summary.p50DurationMs == 250)
        let daily = try await connection.query(
            "SELECT name, total, samples FROM runner.daily_metrics WHERE job = 'viewed' ORDER BY name")
        let totals = try daily.map {
            [try $0.string("name") ?? "", String(try $0.double("total") ?? -1), String(try $0.int("samples") ?? -1)]
        }
        #expect(totals == [["emails_sent", "4.0", "4"], ["found", "6.0", "4"]])
        let history = try await ledger.history(Ledger.HistoryFilter(job: "viewed", status: .failed))
        #expect(history.map(\.error) == ["boom"])
    }
}
