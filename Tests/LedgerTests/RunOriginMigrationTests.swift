import Foundation
import Testing

@testable import Ledger
@testable import PostgresClient
import TestSupport

/// Migration 13 on a ledger that version 12 wrote: a run's origin was its key's prefix
/// (`manual:`, `dry-run:`, their retries `#n`), and becomes a column (issue 27).
@Suite("Run origin: the migration of an existing ledger")
struct RunOriginMigrationTests {
    @Test("manual, dry and scheduled rows of a version-12 ledger get their origin; every query reads it, not the key")
    func upgradeReadsOriginNotKeys() async throws {
        let url = try await TestDatabase.fresh("originmigrate")
        let connection = try await PostgresConnection.connect(url)
        _ = try await Migrator(connection: connection, migrations: Migration.all.filter { $0.version < 13 }).migrate()
        // As version 12 wrote them: slot 1 failed twice (attempt 2's retry due, none made), a
        // manual run failed and its retry runs now, a dry run succeeded.
        try await connection.execute(
            """
            INSERT INTO runner.jobs (namespace, name, schedule, timezone, defined_at)
            VALUES ('default', 'report', '@daily', 'UTC', '-infinity');
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, dry_run, claimed_by,
                                     lease_seconds, finished_at, duration_ms, retry_at, heartbeat_at)
            VALUES ('default', 'report', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'once', 1, 'failed', false,
                    'h:1', 30, now(), 5, NULL, now()),
                   ('default', 'report', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z#2', 'retry', 2, 'failed', false,
                    'h:1', 30, now(), 5, now() - interval '1 minute', now()),
                   ('default', 'report', '2026-01-01T00:00:05Z', 'manual:8d0c', 'manual', 1, 'failed', false,
                    'h:2', 30, now(), 5, now() - interval '1 minute', now()),
                   ('default', 'report', '2026-01-01T00:00:05Z', 'manual:8d0c#2', 'retry', 2, 'running', false,
                    'h:2', 3600, NULL, NULL, NULL, now()),
                   ('default', 'report', '2026-01-01T00:00:09Z', 'dry-run:77aa', 'manual', 1, 'succeeded', true,
                    'h:3', 30, now(), 5, NULL, now());
            """)
        let report = try await Migrator(connection: connection).migrate()
        #expect(report.applied == [13])
        let origins = try await connection.query("SELECT slot_key, origin FROM runner.runs ORDER BY id").map {
            "\(try $0.string("slot_key") ?? "") \(try $0.string("origin") ?? "")"
        }
        #expect(
            origins == [
                "2026-01-01T00:00:00Z schedule", "2026-01-01T00:00:00Z#2 schedule", "manual:8d0c manual",
                "manual:8d0c#2 manual", "dry-run:77aa dry_run",
            ])

        let ledger = Ledger(connection: connection, namespace: "default")
        let slot1 = Date(timeIntervalSince1970: 1_767_225_600)
        let manualSlot = slot1.addingTimeInterval(5)
        // Each chain by its origin: the slot's latest attempt, and the manual run's own.
        #expect(try await ledger.latestAttempt(job: "report", slot: slot1)?.slotKey == "2026-01-01T00:00:00Z#2")
        let manual = try #require(try await ledger.latestAttempt(job: "report", slot: manualSlot, origin: .manual))
        #expect(manual.slotKey == "manual:8d0c#2" && manual.origin == .manual)
        #expect(try await ledger.latestAttempt(job: "report", slot: manualSlot) == nil)
        #expect(try await ledger.latestAttempts(job: "report", slots: [slot1, manualSlot]).keys.sorted() == [
            Ledger.slotKey(for: slot1)
        ])
        // Only the slot's retry is due for whoever comes next: the manual run's is its process's.
        #expect(try await ledger.dueRetrySlots(jobs: ["report"]).map(\.slot) == [slot1])
        // The manual retry still running holds no slot: the next one is claimed, not skipped,
        // and `overlap: replace` leaves it alone.
        let slot2 = slot1.addingTimeInterval(86_400)
        let claim = try await ledger.claim(
            Ledger.ClaimRequest(
                job: "report", slot: slot2, slotKey: Ledger.slotKey(for: slot2), trigger: .schedule,
                claimedBy: "t:1", lease: .seconds(30), skipIfRunning: true))
        guard case .claimed(let runID) = claim else {
            Issue.record("a manual run held the slot: \(claim)")
            return
        }
        #expect(try await ledger.run(id: runID)?.origin == .schedule)
        #expect(try await ledger.interruptLiveRuns(job: "report", before: slot2.addingTimeInterval(1), reason: "r") == [
            runID
        ])
        // A runner of version 12 still connected writes a manual retry without an origin: refused,
        // never taken for a slot's run.
        let refused = await #expect(throws: PostgresError.self) {
            try await connection.execute(
                """
                INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, claimed_by, lease_seconds)
                VALUES ('default', 'report', '2026-01-01T00:00:05Z', 'manual:8d0c#3', 'retry', 3, 'running', 'h:2', 30)
                """)
        }
        #expect(refused?.sqlState == "23514")
        // A row that names an origin this runner does not know is an error, never a default.
        try await connection.execute("ALTER TABLE runner.runs DROP CONSTRAINT runs_origin_check")
        try await connection.execute("UPDATE runner.runs SET origin = 'event' WHERE slot_key = 'dry-run:77aa'")
        await #expect(throws: LedgerError.self) { try await ledger.history(.init(limit: 10)) }
    }
}
