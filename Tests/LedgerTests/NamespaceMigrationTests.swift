import Foundation
import Testing

@testable import Engine
@testable import PostgresClient
@testable import Ledger
@testable import Outbox
import TestSupport

/// Migration 12 on a ledger that version 11 wrote: everything lands in `default`, nothing is
/// lost, and the runner carries on where it was (issue 25).
@Suite("Namespaces: the migration of an existing ledger")
struct NamespaceMigrationTests {
    @Test("runs, effects, a pending notification, a pause and the jobs of a version-11 ledger move into default intact")
    func upgradeKeepsEverything() async throws {
        let url = try await TestDatabase.fresh("nsmigrate")
        let connection = try await PostgresConnection.connect(url)
        _ = try await Migrator(connection: connection, migrations: Migration.all.filter { $0.version < 12 }).migrate()
        try await connection.execute(
            """
            INSERT INTO runner.jobs (name, schedule, timezone, defined_at) VALUES ('report', '@daily', 'UTC', '-infinity');
            INSERT INTO runner.runs (job, slot, slot_key, trigger, status, claimed_by, lease_seconds, finished_at, duration_ms)
            VALUES ('report', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'once', 'failed', 'h:1', 30, now(), 5),
                   ('report', '2026-01-02T00:00:00Z', '2026-01-02T00:00:00Z', 'once', 'succeeded', 'h:1', 30, now(), 5);
            INSERT INTO runner.metrics (run_id, job, name, value) SELECT id, job, 'duration_ms', 5 FROM runner.runs;
            INSERT INTO runner.effects (kind, key, run_id, status, target, payload)
            VALUES ('notification', 'notify:report|failed|2026-01-01T00:00:00Z|webhook-0000', 1, 'pending', 'webhook-0000', '{}'),
                   ('email', 'task-monitor@zoark:a', 2, 'sent', 'a@example.com', '{}');
            INSERT INTO runner.pauses (job, reason, paused_by) VALUES ('report', 'upgrade', 'ops@host');
            """)
        let report = try await Migrator(connection: connection).migrate()
        #expect(report.applied == [12, 13])
        func namespaces(_ table: String) async throws -> [String] {
            try await connection.query("SELECT DISTINCT namespace FROM runner.\(table)").compactMap {
                try $0.string("namespace")
            }
        }
        for table in ["jobs", "runs", "metrics", "effects", "pauses", "maintenance"] {
            #expect(try await namespaces(table) == ["default"], "\(table)")
        }
        let ledger = Ledger(connection: connection, namespace: "default")
        #expect(try await ledger.history(.init(limit: 10)).count == 2)
        #expect(try await ledger.activePauses(jobs: ["report"])["report"]?.reason == "upgrade")
        let pending = try await Effects(connection: connection, namespace: "default").pending(
            kind: Notifier.kind, keyPrefix: "notify:")
        #expect(pending.map(\.key) == ["notify:report|failed|2026-01-01T00:00:00Z|webhook-0000"])
        #expect(try await ledger.summaries(jobs: ["report"])["report"]?.lastStatus == .succeeded)
        // Another namespace sees none of it, and may claim the same job and slot.
        let sales = Ledger(connection: connection, namespace: "sales")
        #expect(try await sales.history(.init(limit: 10)).isEmpty)
        #expect(try await Effects(connection: connection, namespace: "sales").pending(kind: Notifier.kind).isEmpty)
        let slot = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01T00:00:00Z
        let request = Ledger.ClaimRequest(
            job: "report", slot: slot, slotKey: Ledger.slotKey(for: slot), trigger: .once, claimedBy: "t:1",
            lease: .seconds(30), skipIfRunning: true)
        guard case .claimed = try await sales.claim(request) else {
            Issue.record("sales could not claim its own report slot")
            return
        }
        guard case .taken(_, .failed) = try await ledger.claim(request) else {
            Issue.record("default's slot was not kept")
            return
        }
        // A statement that forgot its namespace fails instead of writing into default.
        await #expect(throws: PostgresError.self) {
            try await connection.execute(
                "INSERT INTO runner.runs (job, slot, slot_key, trigger, status, claimed_by, lease_seconds) "
                    + "VALUES ('x', now(), 'x', 'once', 'running', 't', 30)")
        }
        await connection.close()
    }
}
