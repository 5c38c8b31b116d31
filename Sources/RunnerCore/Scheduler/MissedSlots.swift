import Foundation

/// The dead man's switch: slots that should have run and did not. A slot is missed when its
/// catchup has passed and it has no row, counting from the job's first scheduled run (a job new
/// to the table has missed nothing); a slot that fell in a pause is recorded skipped instead.
///
/// Every `runner once` checks the whole table this way (one statement to read, one or two to
/// write), so platform cron alone, with no scheduler running, notices a job whose cron stopped.
public enum MissedSlots {
    /// At most this many slots are recorded per job and check; a later check goes on from there.
    static let cap = 1000

    /// The slots of `job` after its latest scheduled row (and after its schedule took its
    /// present form) and at least its catchup before `now`.
    static func passed(_ job: Job, history: Ledger.SlotHistory, now: Date) -> [Date] {
        guard history.first != nil, let last = history.last else { return [] }
        let deadline = now.addingTimeInterval(-job.catchup.timeInterval)
        var slots: [Date] = []
        // A slot at the instant of the edit is the new schedule's (>=), so the cursor starts just before.
        var cursor = max(last, history.definedAt.map { $0.addingTimeInterval(-0.001) } ?? last)
        while slots.count < cap, let next = job.schedule.next(after: cursor), next <= deadline {
            slots.append(next)
            cursor = next
        }
        return slots
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

    /// Finds and records the missed (and paused) slots of `jobs` as of `now` (the database's
    /// clock), and with `notifier` their `missed` notifications, pending, in the same step: the
    /// next pass over pending notifications sends them, whoever made the check. Returns the
    /// missed rows this check wrote (another process's check writes the others).
    @discardableResult
    public static func record(jobs: [Job], ledger: Ledger, now: Date, notifier: Notifier?) async throws
        -> [Ledger.WrittenSlot]
    {
        guard !jobs.isEmpty else { return [] }
        let histories = try await ledger.slotHistories(jobs: jobs.map(\.name))
        var passed: [String: [Date]] = [:]
        for job in jobs {
            guard let history = histories[job.name] else { continue }
            passed[job.name] = Self.passed(job, history: history, now: now)
        }
        let (missed, paused) = separatePaused(passed, histories: histories)
        if !paused.isEmpty { try await ledger.recordPaused(paused, trigger: .once, reason: "paused") }
        guard !missed.isEmpty else { return [] }
        let written = try await ledger.recordMissed(
            missed, trigger: .once, reason: "missed: no run started for this slot within its catchup")
        let byName = Dictionary(jobs.map { ($0.name, $0) }) { first, _ in first }
        await notifier?.recordMissed(written, jobs: byName, now: now)
        return written
    }
}
