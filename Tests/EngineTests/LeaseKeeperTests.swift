import Foundation
import Logging
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Ledger
import TestSupport

@Suite("LeaseKeeper: every lease of a process in one statement")
struct LeaseKeeperTests {
    /// `count` runs of distinct jobs claimed in one slot, their heartbeats set 20 s back.
    static func claimed(_ count: Int, ledger: Ledger, connection: PostgresConnection) async throws -> [Int64] {
        let slot = try #require(InstantFormat.parse("2026-11-22T07:00:00Z"))
        var ids: [Int64] = []
        for index in 0..<count {
            guard case .claimed(let id) = try await ledger.claim(claimRequest("lease-\(index)", slot: slot))
            else {
                Issue.record("run \(index) not claimed")
                continue
            }
            ids.append(id)
        }
        try await connection.query("UPDATE runner.runs SET heartbeat_at = now() - interval '20 seconds'")
        return ids
    }

    static func stale(_ connection: PostgresConnection) async throws -> Int {
        try await connection.query(
            "SELECT count(*) AS n FROM runner.runs WHERE status = 'running' AND heartbeat_at < now() - interval '10 seconds'"
        ).first?.int("n") ?? -1
    }

    @Test(
        "held leases are renewed together; one lost to another process stops only its run, even before its work began")
    func renewAndLose() async throws {
        let (_, connection) = try await TestDatabase.migrated("leasekeeper")
        let ledger = Ledger(connection: connection)
        let ids = try await Self.claimed(40, ledger: ledger, connection: connection)
        let keeper = LeaseKeeper(
            ledger: ledger, interval: .milliseconds(200), fenceAfter: .seconds(60), logger: Logger(label: "test"))
        let lostRuns = LostRuns()
        for id in ids.dropLast() { await keeper.watch(id) { lostRuns.add(id) } }
        // The last one is held from its claim, its work not started yet.
        await keeper.hold(ids.last!)
        // Another process takes two of them for abandoned: the first watched, and the held one.
        try await connection.query(
            "UPDATE runner.runs SET status = 'abandoned' WHERE id = ANY($1::bigint[])",
            [.array([ids[0], ids.last!].map(String.init))])
        let renewed = try await eventually(within: .seconds(20)) {
            try await Self.stale(connection) == 0 && lostRuns.ids == [ids[0]]
        }
        let staleLeft = try await Self.stale(connection)
        #expect(renewed, "stale: \(staleLeft), lost: \(lostRuns.ids)")
        // Its work starts now, after the loss: it is stopped at once.
        await keeper.watch(ids.last!) { lostRuns.add(ids.last!) }
        #expect(lostRuns.ids == [ids[0], ids.last!])
        // Released leases are no longer renewed.
        for id in ids { await keeper.release(id) }
        try await connection.query("UPDATE runner.runs SET heartbeat_at = now() - interval '20 seconds'")
        try await Task.sleep(for: .seconds(1))
        #expect(try await Self.stale(connection) == 38)
    }

    @Test("a lease that cannot be renewed (the database is gone) stops its run after the fence time, not before")
    func fence() async throws {
        let (url, connection) = try await TestDatabase.migrated("leasefence")
        let ledger = Ledger(connection: connection)
        let ids = try await Self.claimed(1, ledger: ledger, connection: connection)
        let own = try await PostgresConnection.connect(url, applicationName: "lease-fence")
        let keeper = LeaseKeeper(
            ledger: Ledger(connection: own), interval: .milliseconds(100), fenceAfter: .seconds(5),
            logger: Logger(label: "test"))
        let lostRuns = LostRuns()
        await keeper.watch(ids[0]) { lostRuns.add(ids[0]) }
        // Renewed for a while, then the database is dropped under it: every reconnect fails.
        try await Task.sleep(for: .milliseconds(500))
        let name = try #require(try await connection.query("SELECT current_database() AS name").first?.string("name"))
        #expect(lostRuns.ids.isEmpty, "lost while the database answered")
        let admin = try await PostgresConnection.connect(url.replacingDatabase(with: "postgres"))
        // Renewals every 0.1 s succeed until the drop: the last one is this recent, unless the
        // machine stalls for over 3 s, so the 5 s fence cannot come within 2 s of here.
        let started = ContinuousClock.now
        try await admin.execute("DROP DATABASE \"\(name)\" WITH (FORCE)")
        await admin.close()
        let lost = try await eventually(within: .seconds(30)) { lostRuns.ids == ids }
        #expect(lost, "the run was never fenced")
        #expect(ContinuousClock.now - started >= .seconds(2), "fenced long before its fence time")
    }
}

/// The runs a keeper stopped, in order.
final class LostRuns: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped: [Int64] = []

    func add(_ id: Int64) -> Bool {
        lock.withLock { stopped.append(id) }
        return true
    }

    var ids: [Int64] { lock.withLock { stopped } }
}
