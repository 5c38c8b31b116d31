import BenchmarkSupport
import Foundation
import Ledger
import Engine

// Migration 12 (namespaces) on a large ledger: a ledger at version 11 with RUNS runs (default
// 1,000,000 over 50 jobs), a metric per run and an effect per ten runs is brought to the latest
// version. Prints the time of each step and checks nothing was lost and every row is `default`'s.
//
// Run: swift run -c release migration-bench [CONNECTION-STRING]
// Default: the embedded PostgreSQL (RUNNER_HOME, else ./.runner). A fresh database is used.

@main
struct MigrationBench {
    static func main() async throws {
        let runs = Int(ProcessInfo.processInfo.environment["RUNS"] ?? "") ?? 1_000_000
        let server = try await BenchmarkDatabase.fromArguments()
        let (name, _, connection) = try await server.fresh(
            "migration_bench", migrations: Migration.all.filter { $0.version < 12 })
        let clock = ContinuousClock()
        var began = clock.now
        try await connection.execute(
            """
            INSERT INTO runner.runs (job, slot, slot_key, trigger, status, claimed_by, lease_seconds, started_at,
                                     heartbeat_at, finished_at, duration_ms)
            SELECT 'job-' || (n % 50), s, to_char(s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), 'schedule',
                   CASE WHEN n % 17 = 0 THEN 'failed' ELSE 'succeeded' END, 'bench:1', 30, s, s, s, 10
            FROM generate_series(1, \(runs)) AS n,
                 LATERAL (SELECT timestamptz '2026-01-01' + (n / 50) * interval '1 minute') AS t(s);
            INSERT INTO runner.metrics (run_id, job, name, value, unit) SELECT id, job, 'duration_ms', 10, 'ms' FROM runner.runs;
            INSERT INTO runner.effects (kind, key, run_id, status, target, payload)
            SELECT 'email', 'bench:' || id, id, CASE WHEN id % 100 = 0 THEN 'pending' ELSE 'sent' END, 'a@example.com', '{}'
            FROM runner.runs WHERE id % 10 = 0;
            INSERT INTO runner.jobs (name, schedule, timezone) SELECT 'job-' || n, '* * * * *', 'UTC' FROM generate_series(0, 49) AS n;
            INSERT INTO runner.pauses (job, paused_by) VALUES ('job-1', 'bench');
            ANALYZE;
            """)
        print("seeded a version-11 ledger: \(runs) runs, \(runs) metrics, \(runs / 10) effects in \(clock.now - began)")
        began = clock.now
        let report = try await Migrator(connection: connection).migrate()
        let took = clock.now - began
        print("migration \(report.applied.map(String.init).joined(separator: ",")) took \(took)")
        func count(_ sql: String) async throws -> Int { try await connection.query(sql).first?.int("n") ?? -1 }
        let kept = try await count("SELECT count(*) AS n FROM runner.runs WHERE namespace = 'default'")
        let others = try await count(
            """
            SELECT (SELECT count(*) FROM runner.runs WHERE namespace <> 'default')
                 + (SELECT count(*) FROM runner.effects WHERE namespace <> 'default')
                 + (SELECT count(*) FROM runner.metrics WHERE namespace <> 'default') AS n
            """)
        benchmarkCheck(kept == runs, "runs kept in default: \(kept) of \(runs)")
        benchmarkCheck(others == 0, "rows outside default: \(others)")
        let pending = try await count("SELECT count(*) AS n FROM runner.effects WHERE status = 'pending'")
        benchmarkCheck(pending == runs / 100, "pending effects kept: \(pending)")
        // A claim on the migrated ledger, in a namespace of its own and in default.
        for namespace in ["default", "sales"] {
            let ledger = Ledger(connection: connection, namespace: namespace)
            let slot = Date(timeIntervalSince1970: 1_900_000_000)
            let claimed = try await ledger.claim(
                Ledger.ClaimRequest(
                    job: "job-1", slot: slot, slotKey: Ledger.slotKey(for: slot), trigger: .schedule,
                    claimedBy: "bench:1", lease: .seconds(30), skipIfRunning: true))
            guard case .claimed = claimed else {
                benchmarkCheck(false, "no claim in \(namespace): \(claimed)")
                continue
            }
        }
        print("claims after the migration: one in default, one in sales")
        await connection.close()
        try await server.drop(name)
    }
}
