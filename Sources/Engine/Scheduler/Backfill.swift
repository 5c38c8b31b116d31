import Foundation
import JobTable
import Ledger

/// `runner backfill JOB --from T --to T`: every slot of the range once, oldest first, through
/// the same claim as the schedule, under the job's overlap policy. A slot that already has a
/// run is left as it is and listed.
public struct Backfill: Sendable {
    /// What became of one slot.
    public enum Step: Sendable {
        case ran(RunRecord)
        case alreadyRan(RunRecord)
        case skipped(runID: Int64, liveRunID: Int64)
        /// `--dry-run`: nothing is claimed; the slot has no run yet.
        case wouldRun
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case emptyRange
        case future(Date)
        case tooMany(Int)

        public var description: String {
            switch self {
            case .emptyRange: return "--from is after --to"
            case .future(let now):
                return "--to lies in the future (the database's clock says \(Ledger.slotKey(for: now))); "
                    + "slots to come are the scheduler's"
            case .tooMany(let count):
                return "the range holds more than \(count) slots; backfill it in parts"
            }
        }
    }

    /// At most this many slots per call.
    public static let maxSlots = 10_000

    public let runner: OnceRunner

    public init(runner: OnceRunner) { self.runner = runner }

    /// `job`'s slots in `[from, to]`, oldest first.
    public static func slots(of job: Job, from: Date, to: Date, now: Date) throws(Failure) -> [Date] {
        guard from <= to else { throw .emptyRange }
        guard to <= now else { throw .future(now) }
        var slots: [Date] = []
        var cursor = job.schedule.previous(atOrBefore: from, within: .zero) ?? job.schedule.next(after: from)
        while let slot = cursor, slot <= to {
            guard slots.count < maxSlots else { throw .tooMany(maxSlots) }
            slots.append(slot)
            cursor = job.schedule.next(after: slot)
        }
        return slots
    }

    /// Runs (or, dry, lists) each slot of the range once; `report` hears each as it is done.
    public func run(
        _ job: Job, from: Date, to: Date, dryRun: Bool, report: (Date, Step) -> Void
    ) async throws -> [Step] {
        let now = try await runner.executor.ledger.databaseNow()
        let slots = try Self.slots(of: job, from: from, to: to, now: now)
        try await runner.executor.ledger.registerJobs([job], at: now)
        var steps: [Step] = []
        if dryRun {
            let existing = try await runner.executor.ledger.latestAttempts(job: job.name, slots: slots)
            for slot in slots {
                let step = existing[Ledger.slotKey(for: slot)].map(Step.alreadyRan) ?? .wouldRun
                report(slot, step)
                steps.append(step)
            }
            return steps
        }
        for slot in slots {
            try Task.checkCancellation()
            let step: Step
            switch try await runner.runSlot(job, slot: slot, now: now, trigger: .backfill, retry: false) {
            case .ran(let record, _): step = .ran(record)
            case .alreadyClaimed(let record): step = .alreadyRan(record)
            case .skipped(let runID, let liveRunID, _): step = .skipped(runID: runID, liveRunID: liveRunID)
            case .missed, .noSlot, .paused, .beforeDefinition: continue  // runSlot claims a backfill's slot: none of these happen
            }
            report(slot, step)
            steps.append(step)
        }
        return steps
    }
}
