import Foundation
@testable import JobTable
import Logging
import StandardAgents
import Testing

@testable import Engine
@testable import PostgresClient
@testable import Ledger
import TestSupport

/// Retention (issue 14): old runs, metrics and done effects go, in batches, once an hour among
/// all replicas; running runs, pending effects and each job's last 20 failures stay.
@Suite("Retention against a real PostgreSQL")
struct RetentionTests {
    static func seed(_ connection: PostgresConnection) async throws {
        try await connection.execute(
            """
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, claimed_by, lease_seconds,
                                     started_at, heartbeat_at, finished_at)
            SELECT 'default', 'a', t, 'a-failed-' || n, 'once', 1, 'failed', 'h:1', 30, t, t, t
            FROM generate_series(1, 25) AS n, LATERAL (SELECT now() - interval '100 days' - n * interval '1 hour') AS s(t)
            UNION ALL
            SELECT 'default', 'a', t, 'a-old-' || n, 'once', 1, 'succeeded', 'h:1', 30, t, t, t
            FROM generate_series(1, 5) AS n, LATERAL (SELECT now() - interval '95 days' - n * interval '1 hour') AS s(t)
            UNION ALL
            SELECT 'default', 'a', t, 'a-new-' || n, 'once', 1, 'succeeded', 'h:1', 30, t, t, t
            FROM generate_series(1, 3) AS n, LATERAL (SELECT now() - n * interval '1 hour') AS s(t)
            UNION ALL
            SELECT 'default', 'a', now() - interval '100 days', 'a-running', 'once', 1, 'running', 'h:1', 30,
                   now() - interval '100 days', now() - interval '100 days', NULL
            UNION ALL
            SELECT 'default', 'b', t, 'b-failed-' || n, 'once', 1, 'timed_out', 'h:1', 30, t, t, t
            FROM generate_series(1, 2) AS n, LATERAL (SELECT now() - interval '300 days' - n * interval '1 hour') AS s(t);

            INSERT INTO runner.metrics (namespace, run_id, job, name, value, recorded_at)
            SELECT 'default', NULL::bigint, 'a', 'm', n, now() - interval '40 days' FROM generate_series(1, 10) AS n
            UNION ALL SELECT 'default', NULL, 'a', 'm', n, now() - interval '1 day' FROM generate_series(1, 5) AS n;

            INSERT INTO runner.effects (namespace, kind, key, status, created_at, done_at)
            SELECT 'default', 'email', 'old-sent-' || n, 'sent', now() - interval '200 days', now() - interval '200 days'
            FROM generate_series(1, 3) AS n
            UNION ALL SELECT 'default', 'email', 'old-pending', 'pending', now() - interval '200 days', NULL
            UNION ALL SELECT 'default', 'email', 'new-sent-' || n, 'sent', now() - interval '2 days', now() - interval '2 days'
            FROM generate_series(1, 2) AS n;
            """)
    }

    static func count(_ connection: PostgresConnection, _ sql: String) async throws -> Int {
        try await connection.query(sql).first?.int("count") ?? -1
    }

    @Test(
        "a pass deletes what is past retention in batches, keeps the last 20 failures, running runs and pending effects"
    )
    func prunes() async throws {
        let (_, connection) = try await TestDatabase.migrated("retention")
        try await Self.seed(connection)
        let ledger = Ledger(connection: connection)
        let pruned = try await ledger.prune(Retention(), batch: 7)
        // a: 5 old successes and the 5 oldest of 25 failures; b's 2 failures are its last 20.
        #expect(pruned == Ledger.Pruned(runs: 10, metrics: 10, effects: 3))
        #expect(
            try await Self.count(connection, "SELECT count(*) FROM runner.runs WHERE job = 'a' AND status = 'failed'")
                == 20)
        let oldestKept = try await connection.query(
            "SELECT min(slot_key) FILTER (WHERE slot_key LIKE 'a-failed-%') AS k, count(*) FILTER (WHERE status = 'running') AS running, count(*) FILTER (WHERE slot_key LIKE 'a-new-%') AS new, count(*) FILTER (WHERE job = 'b') AS b FROM runner.runs"
        ).first
        #expect(try oldestKept?.int("running") == 1, "a running run is never deleted")
        #expect(try oldestKept?.int("new") == 3)
        #expect(try oldestKept?.int("b") == 2)
        let failures = try await connection.query(
            "SELECT slot_key FROM runner.runs WHERE job = 'a' AND status = 'failed' ORDER BY started_at DESC")
        #expect(
            try failures.map { try $0.string("slot_key") ?? "" } == (1...20).map { "a-failed-\($0)" }, "the newest 20")
        #expect(try await Self.count(connection, "SELECT count(*) FROM runner.metrics") == 5)
        let effects = try await connection.query("SELECT key FROM runner.effects ORDER BY key")
        #expect(try effects.map { try $0.string("key") ?? "" } == ["new-sent-1", "new-sent-2", "old-pending"])

        #expect(try await ledger.prune(Retention()) == nil, "once an hour: a second pass is not this replica's turn")
    }

    @Test("eight replicas due at once: exactly one prunes")
    func onePass() async throws {
        let (url, connection) = try await TestDatabase.migrated("retentionrace")
        try await Self.seed(connection)
        var connections: [PostgresConnection] = []
        for _ in 0..<8 { connections.append(try await PostgresConnection.connect(url)) }
        let results = try await withThrowingTaskGroup(of: Ledger.Pruned?.self) { group in
            for other in connections { group.addTask { try await Ledger(connection: other).prune(Retention()) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for other in connections { await other.close() }
        #expect(results.compactMap { $0 }.count == 1, "\(results)")
        #expect(results.compactMap { $0 }.first?.runs == 10)
    }

    @Test("the scheduler prunes on its sweep, with the table's retention")
    func schedulerPrunes() async throws {
        let (_, connection) = try await TestDatabase.migrated("retentionsched")
        try await Self.seed(connection)
        var retention = Retention()
        retention.runs = .seconds(400 * 86_400)
        let executor = RunExecutor(
            ledger: Ledger(connection: connection), agents: .standard, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        let now = try await executor.ledger.databaseNow()
        let scheduler = Scheduler(
            jobs: [], runner: OnceRunner(executor: executor), logger: executor.logger, now: now, retention: retention)
        await scheduler.tick(now: now)
        await scheduler.waitForPruning()
        #expect(
            try await Self.count(connection, "SELECT count(*) FROM runner.runs") == 36, "runs are kept 400 days here")
        #expect(try await Self.count(connection, "SELECT count(*) FROM runner.metrics") == 5)
        #expect(try await Self.count(connection, "SELECT count(*) FROM runner.effects") == 3)
    }

    @Test("retention: in defaults is read, each at least a day, errors at line:col")
    func tableRetention() throws {
        let table = try JobTableLoader(environment: [:], agents: .standard).load(
            text: """
                defaults:
                  retention: {runs: 30d, effects: 365d}
                jobs:
                  a: {command: ["true"], schedule: "@daily"}
                """, path: "jobs.yaml")
        #expect(table.retention.runs == .seconds(30 * 86_400))
        #expect(table.retention.metrics == .seconds(30 * 86_400), "the default")
        #expect(table.retention.effects == .seconds(365 * 86_400))
        #expect(throws: JobTableError.self) {
            try JobTableLoader(environment: [:], agents: .standard).load(
                text:
                    "defaults:\n  retention: {runs: 12h, logs: 3d}\njobs:\n  a: {command: [\"true\"], schedule: \"@daily\"}\n",
                path: "jobs.yaml")
        }
        do {
            _ = try JobTableLoader(environment: [:], agents: .standard).load(
                text:
                    "defaults:\n  retention: {runs: 12h, logs: 3d}\njobs:\n  a: {command: [\"true\"], schedule: \"@daily\"}\n",
                path: "jobs.yaml")
        } catch {
            #expect(
                error.description.contains("jobs.yaml:2:21: defaults, key \"retention.runs\": must be at least 1d"),
                "\(error)")
            #expect(
                error.description.contains("jobs.yaml:2:26: unknown key \"logs\""), "the unknown key logs: \(error)")
        }
    }
}
