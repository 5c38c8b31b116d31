import Foundation
@testable import JobTable
import StandardAgents
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import Ledger
import TestSupport

/// What a job owes for a span of time, on an injected clock (issue 25): the one rule `once`, the
/// scheduler, `status` and `missed` share.
@Suite("What a job owes: definition, edits, pauses, holes, blips and the cap")
struct OwedTests {
    static func at(_ text: String) -> Date { InstantFormat.parse(text) ?? .distantPast }

    static func job(_ schedule: String, catchup: String = "1h") throws -> Job {
        try #require(
            try JobTableLoader(environment: [:], agents: .standard).load(
                text: "jobs:\n  j: {command: [\"true\"], schedule: \"\(schedule)\", catchup: \(catchup)}\n",
                path: "jobs.yaml"
            ).jobs.first)
    }

    static func history(definedAt: String? = nil, checkedThrough: String? = nil, last: String? = nil)
        -> Ledger.SlotHistory
    {
        var history = Ledger.SlotHistory(first: nil, last: last.map(at))
        history.definedAt = definedAt.map(at)
        history.checkedThrough = checkedThrough.map(at)
        return history
    }

    @Test("a new daily job owes nothing before its definition: no catch-up of 10:00 at 10:03, no miss")
    func definition() throws {
        let daily = try Self.job("0 10 * * *")
        let history = Self.history(definedAt: "2026-05-01T10:03:00Z")
        let now = Self.at("2026-05-01T10:03:00Z")
        let decision = Owed.decide(
            [Self.at("2026-05-01T10:00:00Z")], job: daily, history: history, now: now, catchingUp: true)
        #expect(decision == Owed.Decision())
        #expect(Owed.latest(daily, history: history, now: now) == nil)
        // The next day's 10:00 is owed: run by a catch-up, missed once its catchup has passed.
        let nextDay = Self.at("2026-05-02T10:30:00Z")
        #expect(Owed.latest(daily, history: history, now: nextDay) == Self.at("2026-05-02T10:00:00Z"))
        let late = Owed.decide(
            [Self.at("2026-05-02T10:00:00Z")], job: daily, history: history, now: Self.at("2026-05-02T11:30:00Z"),
            catchingUp: false)
        #expect(late.missed == [Self.at("2026-05-02T10:00:00Z")])
    }

    @Test("editing 0 3 * * * to 0 2 * * * at 02:30 does not run or miss the 02:00 slot")
    func scheduleEdit() throws {
        let edited = try Self.job("0 2 * * *")
        let history = Self.history(definedAt: "2026-05-01T02:30:00Z", checkedThrough: "2026-05-01T02:00:00Z")
        #expect(Owed.latest(edited, history: history, now: Self.at("2026-05-01T02:31:00Z")) == nil)
        // Where a check starts: the later of the mark and the definition.
        let start = try #require(Owed.start(of: history))
        #expect(Owed.slots(of: edited, after: start, through: Self.at("2026-05-02T05:00:00Z")) == [
            Self.at("2026-05-02T02:00:00Z")
        ])
    }

    @Test("slots in a pause are paused, never missed; the pause's end ends that")
    func pauses() throws {
        let hourly = try Self.job("0 * * * *", catchup: "10m")
        var history = Self.history(definedAt: "2026-05-01T00:00:00Z")
        history.pauses = [.init(from: Self.at("2026-05-01T01:30:00Z"), to: Self.at("2026-05-01T03:30:00Z"))]
        let slots = ["01", "02", "03", "04"].map { Self.at("2026-05-01T\($0):00:00Z") }
        let decision = Owed.decide(
            slots, job: hourly, history: history, now: Self.at("2026-05-01T05:00:00Z"), catchingUp: false)
        #expect(decision.paused == [slots[1], slots[2]])
        #expect(decision.missed == [slots[0], slots[3]])
    }

    @Test("a hole within catchup stays open until its catchup passes, then it is missed")
    func holes() throws {
        let minutely = try Self.job("* * * * *", catchup: "5m")
        let history = Self.history(definedAt: "2026-05-01T00:00:00Z")
        let hole = Self.at("2026-05-01T10:00:00Z")
        let soon = Owed.decide([hole], job: minutely, history: history, now: Self.at("2026-05-01T10:03:00Z"), catchingUp: false)
        #expect(soon.open == [hole] && soon.missed.isEmpty)
        let later = Owed.decide([hole], job: minutely, history: history, now: Self.at("2026-05-01T10:05:00Z"), catchingUp: false)
        #expect(later.missed == [hole])
    }

    @Test("a 1 s blip of an every-second job: the slots it passed over are coalesced into the catch-up, none missed")
    func blip() throws {
        let everySecond = try Self.job("* * * * * *", catchup: "1h")
        let history = Self.history(definedAt: "2026-05-01T00:00:00Z")
        let passed = ["10:00:00", "10:00:01"].map { Self.at("2026-05-01T\($0)Z") }
        let decision = Owed.decide(
            passed, job: everySecond, history: history, now: Self.at("2026-05-01T10:00:02.200Z"), catchingUp: true)
        #expect(decision.run == Self.at("2026-05-01T10:00:02Z"))
        #expect(decision.coalesced == passed)
        #expect(decision.missed.isEmpty && decision.open.isEmpty)
        // Past catchup the same slots are missed: a stop longer than catchup is news.
        let long = Owed.decide(
            passed, job: everySecond, history: history, now: Self.at("2026-05-01T11:00:02Z"), catchingUp: true)
        #expect(long.missed == passed && long.coalesced.isEmpty)
    }

    @Test("a check looks at no more than the cap of slots per job, oldest first; coalescing keeps the newest")
    func cap() throws {
        let everySecond = try Self.job("* * * * * *", catchup: "1h")
        let from = Self.at("2026-05-01T00:00:00Z")
        let slots = Owed.slots(of: everySecond, after: from, through: from.addingTimeInterval(86_400))
        #expect(slots.count == Owed.cap)
        #expect(slots.first == from.addingTimeInterval(1) && slots.last == from.addingTimeInterval(Double(Owed.cap)))
        let now = from.addingTimeInterval(3000)
        let within = Owed.slots(of: everySecond, after: from, through: now, cap: 5000)
        let decision = Owed.decide(
            within, job: everySecond, history: Self.history(definedAt: "2026-04-01T00:00:00Z"), now: now,
            catchingUp: true)
        #expect(decision.coalesced.count == within.count - 1 && decision.run == now)
    }

    @Test("where a check starts: its mark, never before the definition; a job from before definitions, after its last row")
    func start() {
        #expect(
            Owed.start(of: Self.history(definedAt: "2026-05-01T10:00:00Z", checkedThrough: "2026-05-01T12:00:00Z"))
                == Self.at("2026-05-01T12:00:00Z"))
        let defined = Owed.start(of: Self.history(definedAt: "2026-05-01T10:00:00Z"))
        #expect(defined.map { $0 < Self.at("2026-05-01T10:00:00Z") } == true, "a slot at the definition is owed")
        #expect(Owed.start(of: Self.history(last: "2026-05-01T09:00:00Z")) == Self.at("2026-05-01T09:00:00Z"))
        #expect(Owed.start(of: Self.history()) == nil)
    }

    @Test(
        "the newest slots of a span, walked back from its end: the same slots as walking forward, the cap keeping the newest",
        arguments: ["* * * * * *", "*/5 * * * *", "30 2 * * *", "@every 90s"])
    func newestSlots(schedule: String) throws {
        let job = try Self.job(schedule)
        let from = Self.at("2026-03-28T00:00:00Z")
        let through = from.addingTimeInterval(86_400)
        let forward = Owed.slots(of: job, after: from, through: through, cap: 100_000)
        #expect(Owed.newestSlots(of: job, after: from, through: through, cap: 100_000) == forward)
        #expect(Owed.newestSlots(of: job, after: from, through: through, cap: 3) == Array(forward.suffix(3)))
        // Bounds: after is exclusive, through inclusive.
        let last = try #require(forward.last)
        #expect(Owed.newestSlots(of: job, after: last, through: through, cap: 5).isEmpty)
        #expect(Owed.newestSlots(of: job, after: from, through: last, cap: 1) == [last])
    }
}
