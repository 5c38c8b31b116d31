import Foundation
@testable import JobTable
import StandardAgents
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Ledger
import TestSupport

/// The missed-slot check against a real ledger on an injected clock (issue 25): holes after later
/// runs are found, the checked-through mark keeps each check to what is new, and of several
/// checks at once each missed row is written (and counted) by one.
@Suite("The missed-slot check: holes, the checked-through mark, concurrent checks")
struct MissedSlotsTests {
    static func at(_ text: String) -> Date { InstantFormat.parse(text) ?? .distantPast }

    /// A ledger with `jobs` registered as defined at 10:00, and its connection string.
    static func setup(_ label: String, jobs: String) async throws -> (Ledger, JobTable, ConnectionString) {
        let (url, connection) = try await TestDatabase.migrated(label)
        let table = try JobTableLoader(environment: [:], agents: .standard).load(text: "jobs:\n" + jobs, path: "jobs.yaml")
        let ledger = Ledger(connection: connection)
        try await ledger.registerJobs(table.jobs, at: Self.at("2026-05-01T10:00:00Z"), wholeTable: true)
        return (ledger, table, url)
    }

    static func claim(_ ledger: Ledger, _ job: String, _ slot: Date) async throws {
        _ = try await ledger.claim(
            Ledger.ClaimRequest(
                job: job, slot: slot, slotKey: Ledger.slotKey(for: slot), trigger: .schedule, claimedBy: "t:1",
                lease: .seconds(30), skipIfRunning: false))
    }

    @Test("a gap followed by later runs is found, once; the mark moves past it, so the next check reads nothing old")
    func holesBehindLaterRuns() async throws {
        let (ledger, table, _) = try await Self.setup(
            "holes", jobs: "  five: {command: [\"true\"], schedule: \"*/5 * * * *\", catchup: 1m}\n")
        // 10:00 to 11:00 ran, but for 10:20, 10:25 and 10:40 (claims that failed).
        for minute in stride(from: 0, through: 60, by: 5) where ![20, 25, 40].contains(minute) {
            try await Self.claim(ledger, "five", Self.at("2026-05-01T10:00:00Z").addingTimeInterval(Double(minute) * 60))
        }
        let now = Self.at("2026-05-01T11:03:00Z")
        let written = try await MissedSlots.record(jobs: table.jobs, ledger: ledger, now: now, notifier: nil)
        #expect(written.map(\.slot) == ["10:20", "10:25", "10:40"].map { Self.at("2026-05-01T\($0):00Z") })
        #expect(try await MissedSlots.record(jobs: table.jobs, ledger: ledger, now: now, notifier: nil).isEmpty)
        let history = try #require(try await ledger.slotHistories(jobs: ["five"])["five"])
        #expect(history.checkedThrough == Self.at("2026-05-01T11:02:00Z"))
        // A row deleted behind the mark is not looked for again: the check reads only what is new.
        try await ledger.connection.execute("DELETE FROM runner.runs WHERE slot = '2026-05-01T10:10:00Z'")
        #expect(
            try await MissedSlots.record(
                jobs: table.jobs, ledger: ledger, now: Self.at("2026-05-01T11:08:00Z"), notifier: nil
            ).map(\.slot) == [Self.at("2026-05-01T11:05:00Z")])
    }

    @Test("a check past the cap records the oldest slots and the next goes on from there")
    func capContinues() async throws {
        let (ledger, table, _) = try await Self.setup(
            "capped", jobs: "  second: {command: [\"true\"], schedule: \"* * * * * *\", catchup: 1m}\n")
        // Defined at 10:00, nothing ran: by 11:00, 3540 slots are past their catchup.
        let now = Self.at("2026-05-01T11:00:00Z")
        var total = 0
        for round in 1...4 {
            let written = try await MissedSlots.record(jobs: table.jobs, ledger: ledger, now: now, notifier: nil)
            #expect(written.count == min(Owed.cap, 3541 - total), "round \(round)")
            total += written.count
        }
        #expect(total == 3541, "10:00:00 to 10:59:00, each second")
        #expect(try await MissedSlots.record(jobs: table.jobs, ledger: ledger, now: now, notifier: nil).isEmpty)
    }

    @Test("eight checks at once write each missed row once, and each counts only the rows it wrote")
    func concurrentChecks() async throws {
        let (first, table, url) = try await Self.setup(
            "concurrentcheck", jobs: "  five: {command: [\"true\"], schedule: \"*/5 * * * *\", catchup: 1m}\n")
        let now = Self.at("2026-05-01T12:00:30Z")
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    let ledger = Ledger(connection: try await PostgresConnection.connect(url))
                    return try await MissedSlots.record(jobs: table.jobs, ledger: ledger, now: now, notifier: nil).count
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        // 10:00 to 11:55: 24 slots, past a 1m catchup at 12:00:30 (12:00 is within it).
        #expect(counts.reduce(0, +) == 24, "\(counts)")
        #expect(
            try await first.connection.query("SELECT count(*) AS n FROM runner.runs WHERE status = 'missed'").first?
                .int("n") == 24)
    }
}
