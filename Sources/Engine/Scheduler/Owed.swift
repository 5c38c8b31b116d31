import Foundation
import JobTable
import Ledger
import RunnerSupport

/// What a job owes for a span of its slots: the one rule that `runner once`, the scheduler (its
/// start, stalls and reconnects), `runner status` and `runner missed` all apply.
///
/// For each slot that has no row:
/// - before the job's definition (its schedule or zone took its present form then): nothing;
/// - in one of the job's pauses: `paused` (recorded skipped, never missed);
/// - past its catchup: `missed` (recorded, and notified);
/// - within its catchup, when catching up (a start, a stall, a reconnect): the latest such slot
///   runs, and every slot before it is `coalesced`, served by that run (recorded skipped, no alert);
/// - within its catchup otherwise: still `open`: its own call may yet run it.
public enum Owed {
    public struct Decision: Sendable, Equatable {
        /// Catching up: the slot the catch-up runs (the latest within catchup, from the definition
        /// on), whether or not it has a row yet.
        public var run: Date?
        public var coalesced: [Date] = []
        public var missed: [Date] = []
        public var paused: [Date] = []
        public var open: [Date] = []

        public init() {}
    }

    /// At most this many slots of one job are looked at per check (the oldest first); the
    /// checked-through mark goes on from the last of them, so a later check continues.
    public static let cap = 1000
    /// At most this many slots before a catch-up's run are recorded coalesced (the newest): a
    /// stall longer than that of a seconds-level job leaves the older ones to the check, which
    /// finds them past catchup as missed.
    public static let coalescedCap = 10_000

    /// Decides `slots` (ascending, each without a row) of `job` as of `now`.
    public static func decide(
        _ slots: [Date], job: Job, history: Ledger.SlotHistory, now: Date, catchingUp: Bool
    ) -> Decision {
        var decision = Decision()
        let deadline = now.addingTimeInterval(-job.catchup.timeInterval)
        if catchingUp { decision.run = latest(job, history: history, now: now) }
        var within: [Date] = []
        for slot in slots {
            if let definedAt = history.definedAt, slot < definedAt { continue }
            if history.paused(at: slot) != nil {
                decision.paused.append(slot)
            } else if slot <= deadline {
                decision.missed.append(slot)
            } else if let run = decision.run, slot < run {
                within.append(slot)
            } else if slot != decision.run {
                decision.open.append(slot)
            }
        }
        decision.coalesced = Array(within.suffix(coalescedCap))
        return decision
    }

    /// The slot a catch-up at `now` runs: the latest within catchup, never one from before the
    /// job's definition.
    public static func latest(_ job: Job, history: Ledger.SlotHistory, now: Date) -> Date? {
        guard let slot = job.schedule.previous(atOrBefore: now, within: job.catchup) else { return nil }
        if let definedAt = history.definedAt, slot < definedAt { return nil }
        return slot
    }

    /// Where a check of `job` starts (exclusive): its checked-through mark, not before its
    /// definition; a job never checked from its definition, or (known from before definition
    /// times were kept) from its latest scheduled row. nil: nothing to check.
    public static func start(of history: Ledger.SlotHistory) -> Date? {
        // A slot at the instant of the definition is the definition's own (>=).
        let defined = history.definedAt.map { $0.addingTimeInterval(-0.000_001) }
        switch (history.checkedThrough, defined) {
        case (let checked?, let defined?): return max(checked, defined)
        case (let checked?, nil): return checked
        case (nil, let defined?): return defined
        case (nil, nil): return history.last
        }
    }

    /// The newest `cap` of `job`'s slots after `after` up to and including `through`, oldest
    /// first: found walking back from `through`, so a long span costs `cap` steps, not its length.
    public static func newestSlots(of job: Job, after: Date, through: Date, cap: Int) -> [Date] {
        var slots: [Date] = []
        var cursor = through
        while slots.count < cap {
            let span = cursor.timeIntervalSince(after)
            guard span > 0,
                let slot = job.schedule.previous(atOrBefore: cursor, within: .seconds(Int64(span.rounded(.up)))),
                slot > after
            else { break }
            slots.append(slot)
            cursor = slot.addingTimeInterval(-0.000_001)
        }
        return slots.reversed()
    }

    /// `job`'s slots after `after` up to and including `through`, oldest first, at most `cap`.
    public static func slots(of job: Job, after: Date, through: Date, cap: Int = Owed.cap) -> [Date] {
        var slots: [Date] = []
        var cursor = after
        while slots.count < cap, let next = job.schedule.next(after: cursor), next <= through {
            slots.append(next)
            cursor = next
        }
        return slots
    }
}
