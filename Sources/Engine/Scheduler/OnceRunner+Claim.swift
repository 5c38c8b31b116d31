import Foundation
import HTTPClients
import JobTable
import Ledger
import Logging
import PostgresClient
import RunnerSupport

/// The steps before a slot's work: the pause check, the abandoned mark and the claim, tried
/// again within the slot's claim window while the database refuses them for a while.
extension OnceRunner {
    /// What the steps before a slot's work came to: an outcome already (the job is paused), or
    /// the claim's answer.
    enum ClaimStep: Sendable {
        case settled(Outcome)
        case claim(Ledger.ClaimResult)
    }

    /// The statements up to and including the claim, each idempotent, so the whole step may be
    /// tried again: the pause check, the abandoned mark, the claim.
    func claimStep(
        _ job: Job, slot: Date, slotKey: String, trigger: RunTrigger, claimBy: ContinuousClock.Instant?
    ) async throws -> ClaimStep {
        let ledger = executor.ledger
        // Checked before each statement: a fire queued behind thousands of others on a busy
        // connection runs one statement after a shutdown's signal, not its whole claim.
        guard gate.isOpen else { throw ClaimsStopped() }
        if trigger != .backfill, let paused = try await pausedOutcome(job, slot: slot, trigger: trigger) {
            return .settled(paused)
        }
        guard gate.isOpen else { throw ClaimsStopped() }
        let skipIfRunning = job.overlap == .skip
        if !skipIfRunning {
            try await ledger.markAbandoned(job: job.name)
            guard gate.isOpen else { throw ClaimsStopped() }
        }
        return .claim(
            try await ledger.claim(
                Ledger.ClaimRequest(
                    job: job.name, slot: slot, slotKey: slotKey, trigger: trigger, claimedBy: Ledger.processIdentity,
                    lease: executor.lease, skipIfRunning: skipIfRunning, gate: gate, claimBy: claimBy)))
    }

    /// How long a claim refused by a fault that may pass (a restart, a failover, a revoked grant,
    /// a full disk: ``PostgresError/mayPassForWrites``) is tried again: until the job's next slot
    /// or the end of this slot's catchup, whichever comes first, counted from `now` (the
    /// database's clock at the call). A claim that lands late runs late, once; one that never
    /// lands leaves a hole the dead man's switch records missed. Never beside the next slot.
    package static func claimWindow(_ job: Job, slot: Date, now: Date) -> Duration {
        var end = slot.addingTimeInterval(job.catchup.timeInterval)
        if let next = job.schedule.next(after: slot), next < end { end = next }
        let seconds = end.timeIntervalSince(now)
        return seconds > 0 ? .milliseconds(Int64(seconds * 1000)) : .zero
    }

    /// How long the statements right after a claim (the replaced run's stop, superseded
    /// retries, the skew metric) are tried again before the run is left to the sweep.
    package static let afterClaimPatience: Duration = .seconds(10)

    /// A claim tried again past its window (``claimWindow(_:slot:now:)``): nothing was written;
    /// the slot is a hole the dead man's switch records missed.
    public struct ClaimWindowEnded: Error, CustomStringConvertible {
        public let job: String
        public let slot: String
        public var description: String {
            "slot \(slot) of \(job) was not claimed before its next slot or the end of its catchup"
        }
    }
}
