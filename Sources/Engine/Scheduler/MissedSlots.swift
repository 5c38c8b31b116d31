import Foundation
import JobTable
import Ledger
import Outbox
import RunnerSupport

/// The dead man's switch: every slot of a job from its definition on gets a row, and a slot past
/// its catchup with nothing run is recorded `missed` (``Owed`` decides each). Each job keeps a
/// checked-through mark, so a check looks only at what came since the last one; a hole anywhere
/// after it (a claim that failed, a process that died between its plan and its claim) is found.
///
/// Every `runner once`, `runner status`, `runner missed` and the scheduler's sweep check the
/// whole table this way (two statements to read, one per kind of row to write), so platform cron
/// alone, with no scheduler running, notices a job whose cron stopped.
public enum MissedSlots {
    /// Finds and records the missed (and paused) slots of `jobs` as of `now` (the database's
    /// clock), and with `notifier` their `missed` notifications, pending, in the same step: the
    /// next pass over pending notifications sends them, whoever made the check. `catchingUp` (a
    /// scheduler's start): slots within catchup before the one its catch-up runs are recorded
    /// coalesced. Returns the missed rows this check wrote (another process's check writes the
    /// others), so each is counted and logged once.
    @discardableResult
    public static func record(
        jobs: [Job], ledger: Ledger, now: Date, notifier: Notifier?, catchingUp: Bool = false,
        trigger: RunTrigger = .once
    ) async throws -> [Ledger.WrittenSlot] {
        guard !jobs.isEmpty else { return [] }
        let histories = try await ledger.slotHistories(jobs: jobs.map(\.name))
        var spans: [Ledger.Span] = []
        var candidates: [String: [Date]] = [:]
        var marks: [String: Date] = [:]
        for job in jobs {
            guard let history = histories[job.name] else { continue }
            let deadline = now.addingTimeInterval(-job.catchup.timeInterval)
            guard let start = Owed.start(of: history) else {
                // Known from before definition times were kept, and never run: from here on.
                marks[job.name] = deadline
                continue
            }
            var slots: [Date] = []
            if start < deadline {
                slots = Owed.slots(of: job, after: start, through: deadline)
                if let last = slots.last { spans.append(.init(job: job.name, after: start, through: last)) }
                marks[job.name] = slots.count == Owed.cap ? slots.last : deadline
            }
            if catchingUp, max(start, deadline) < now {
                // The newest: the one the catch-up runs and those just before it.
                let within = Owed.newestSlots(
                    of: job, after: max(start, deadline), through: now, cap: Owed.coalescedCap + 1)
                if let last = within.last { spans.append(.init(job: job.name, after: max(start, deadline), through: last)) }
                slots += within
            }
            candidates[job.name] = slots
        }
        let existing = try await ledger.scheduledSlots(in: spans)
        var open: [String: [Date]] = [:]
        for (name, slots) in candidates where !slots.isEmpty {
            let taken = existing[name] ?? []
            open[name] = slots.filter { !taken.contains($0) }
        }
        let byName = Dictionary(jobs.map { ($0.name, $0) }) { first, _ in first }
        let written = try await settle(
            open, jobs: byName, histories: histories, ledger: ledger, notifier: notifier, now: now,
            catchingUp: catchingUp, trigger: trigger, reason: "missed: no run started for this slot within its catchup")
        // Only once every row is written: a check that failed midway is done again from the mark.
        try await ledger.markChecked(marks)
        return written
    }

    /// Records what ``Owed`` decides of each job's `slots` (none with a row, as far as the caller
    /// knows; a row another process wrote meanwhile wins): paused and coalesced rows, and missed
    /// rows, each with its pending `missed` notification. Returns the missed rows this call wrote.
    package static func settle(
        _ slots: [String: [Date]], jobs: [String: Job], histories: [String: Ledger.SlotHistory], ledger: Ledger,
        notifier: Notifier?, now: Date, catchingUp: Bool, trigger: RunTrigger, reason: String
    ) async throws -> [Ledger.WrittenSlot] {
        var missed: [String: [Date]] = [:]
        var paused: [String: [Date]] = [:]
        var coalesced: [String: [Date]] = [:]
        var servedBy: [String: Date] = [:]
        for (name, dates) in slots {
            guard let job = jobs[name], let history = histories[name] else { continue }
            let decision = Owed.decide(dates, job: job, history: history, now: now, catchingUp: catchingUp)
            if !decision.missed.isEmpty { missed[name] = decision.missed }
            if !decision.paused.isEmpty { paused[name] = decision.paused }
            if !decision.coalesced.isEmpty, let run = decision.run {
                coalesced[name] = decision.coalesced
                servedBy[name] = run
            }
        }
        if !paused.isEmpty { try await ledger.recordPaused(paused, trigger: trigger, reason: "paused") }
        if !coalesced.isEmpty { try await ledger.recordCoalesced(coalesced, servedBy: servedBy, trigger: trigger) }
        guard !missed.isEmpty else { return [] }
        let written = try await ledger.recordMissed(missed, trigger: trigger, reason: reason)
        await notifier?.recordMissed(written, jobs: jobs, now: now)
        return written
    }
}
