import Foundation
import Logging

/// `runner once JOB`: claims the job's latest slot within its catch-up window and runs it, or
/// does nothing if that slot is already taken.
public struct OnceRunner: Sendable {
    public enum Outcome: Sendable {
        case ran(RunRecord)
        case alreadyClaimed(runID: Int64, status: RunStatus, slot: Date)
        case skipped(runID: Int64, liveRunID: Int64, slot: Date)
        /// No slot lies within the catch-up window.
        case noSlot(next: Date?)
    }

    public let executor: RunExecutor
    public let now: @Sendable () -> Date

    public init(executor: RunExecutor, now: @escaping @Sendable () -> Date = { Date() }) {
        self.executor = executor
        self.now = now
    }

    public func run(_ job: Job, force: Bool = false, dryRun: Bool = false) async throws -> Outcome {
        let ledger = executor.ledger
        let now = self.now()
        try await ledger.registerJobs([
            (job.name, job.schedule.text, job.timeZoneName, job.schedule.next(after: now))
        ])
        let slot: Date
        let slotKey: String
        let trigger: RunTrigger
        if force || dryRun {
            // A manual or dry run gets a key of its own and never uses up a cron slot.
            slot = now
            slotKey = "\(dryRun ? "dry-run" : "manual"):\(UUID().uuidString.lowercased())"
            trigger = .manual
        } else {
            guard let latest = job.schedule.previous(atOrBefore: now, within: job.catchup) else {
                return .noSlot(next: job.schedule.next(after: now))
            }
            slot = latest
            slotKey = Ledger.slotKey(for: latest)
            trigger = .once
        }
        let skipIfRunning = job.overlap == .skip && !force && !dryRun
        if !skipIfRunning { try await ledger.markAbandoned(job: job.name) }
        let claim = try await ledger.claim(
            Ledger.ClaimRequest(
                job: job.name, slot: slot, slotKey: slotKey, trigger: trigger, dryRun: dryRun,
                claimedBy: Ledger.processIdentity, lease: executor.lease,
                skipIfRunning: skipIfRunning))
        switch claim {
        case .taken(let runID, let status):
            return .alreadyClaimed(runID: runID, status: status, slot: slot)
        case .skipped(let runID, let liveRunID):
            executor.logger.info(
                "slot skipped: the previous run is still running",
                metadata: ["job": "\(job.name)", "run_id": "\(runID)", "live_run_id": "\(liveRunID)"])
            try await ledger.recordMetrics([Metric("skipped", 1)], runID: runID, job: job.name)
            return .skipped(runID: runID, liveRunID: liveRunID, slot: slot)
        case .claimed(let runID):
            let delay = now.timeIntervalSince(slot)
            if trigger == .once {
                try await ledger.recordMetrics(
                    [Metric("schedule_delay_ms", (delay * 1000).rounded(), unit: "ms")], runID: runID, job: job.name)
            }
            return .ran(try await executor.execute(runID: runID, job: job, slot: slot, dryRun: dryRun))
        }
    }
}
