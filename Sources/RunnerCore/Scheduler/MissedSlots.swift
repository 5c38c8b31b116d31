import Foundation

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
        var missed: [String: [Date]] = [:]
        var paused: [String: [Date]] = [:]
        var coalesced: [String: [Date]] = [:]
        var servedBy: [String: Date] = [:]
        for job in jobs {
            guard let slots = candidates[job.name], !slots.isEmpty, let history = histories[job.name] else { continue }
            let taken = existing[job.name] ?? []
            let decision = Owed.decide(
                slots.filter { !taken.contains($0) }, job: job, history: history, now: now, catchingUp: catchingUp)
            if !decision.missed.isEmpty { missed[job.name] = decision.missed }
            if !decision.paused.isEmpty { paused[job.name] = decision.paused }
            if !decision.coalesced.isEmpty, let run = decision.run {
                coalesced[job.name] = decision.coalesced
                servedBy[job.name] = run
            }
        }
        if !paused.isEmpty { try await ledger.recordPaused(paused, trigger: trigger, reason: "paused") }
        if !coalesced.isEmpty { try await ledger.recordCoalesced(coalesced, servedBy: servedBy, trigger: trigger) }
        var written: [Ledger.WrittenSlot] = []
        if !missed.isEmpty {
            written = try await ledger.recordMissed(
                missed, trigger: trigger, reason: "missed: no run started for this slot within its catchup")
            let byName = Dictionary(jobs.map { ($0.name, $0) }) { first, _ in first }
            await notifier?.recordMissed(written, jobs: byName, now: now)
        }
        // Only once every row is written: a check that failed midway is done again from the mark.
        try await ledger.markChecked(marks)
        return written
    }

    /// Passed slots per job, split into those that fell in one of the job's pauses and the rest.
    static func separatePaused(_ slots: [String: [Date]], histories: [String: Ledger.SlotHistory]) -> (
        missed: [String: [Date]], paused: [String: [Date]]
    ) {
        var missed: [String: [Date]] = [:]
        var paused: [String: [Date]] = [:]
        for (job, dates) in slots {
            for slot in dates {
                if histories[job]?.paused(at: slot) != nil {
                    paused[job, default: []].append(slot)
                } else {
                    missed[job, default: []].append(slot)
                }
            }
        }
        return (missed, paused)
    }
}
