import Foundation
import Ledger
import Logging
import RunnerSupport

/// Renews the leases of every run in progress in this process: one statement per heartbeat
/// interval for all of them, not one per run, so a scheduler running thousands of jobs at once
/// keeps its leases with a handful of round trips, and (given a connection of its own) never
/// behind a queue of claims. A run whose row is no longer `running` (another process marked it
/// abandoned), or whose lease could not be renewed for `fenceAfter`, is told to stop.
public actor LeaseKeeper {
    private struct Holder {
        /// Stops the run; false if it had already ended (its end was being written). Nil until
        /// the work starts (a lease is held from the claim).
        package var lost: (@Sendable () -> Bool)?
        package var lastRenewal: ContinuousClock.Instant
    }

    private let ledger: Ledger
    private let interval: Duration
    private let fenceAfter: Duration
    private let logger: Logger
    private var holders: [Int64: Holder] = [:]
    /// Leases lost before their work started: the work is stopped as soon as it does.
    private var lostEarly: Set<Int64> = []
    private var loop: Task<Void, Never>?

    /// `ledger` may be one on a connection of its own (the scheduler's); `fenceAfter`: how long
    /// a run may go without a renewal before it steps aside.
    public init(ledger: Ledger, interval: Duration, fenceAfter: Duration, logger: Logger) {
        self.ledger = ledger
        self.interval = interval
        self.fenceAfter = fenceAfter
        self.logger = logger
    }

    /// Keeps `runID`'s lease from now (its claim) until ``release(_:)``, before its work starts:
    /// the steps between may wait on a busy connection longer than a lease.
    public func hold(_ runID: Int64) {
        guard holders[runID] == nil else { return }
        holders[runID] = Holder(lost: nil, lastRenewal: .now)
        if loop == nil { loop = Task { await self.renewals() } }
    }

    /// Holds `runID`'s lease if it is not held yet, and calls `lost` (once) if it is lost,
    /// at once if that happened before this call. `lost` returns whether that stopped the run
    /// (false: it had ended already).
    public func watch(_ runID: Int64, lost: @escaping @Sendable () -> Bool) {
        if lostEarly.remove(runID) != nil {
            _ = lost()
            return
        }
        hold(runID)
        holders[runID]?.lost = lost
    }

    public func release(_ runID: Int64) {
        holders[runID] = nil
        lostEarly.remove(runID)
    }

    /// Runs while any lease is held; a new one starts it again.
    private func renewals() async {
        while !holders.isEmpty {
            try? await Task.sleep(for: interval)
            await renew()
        }
        loop = nil
    }

    private func renew() async {
        let ids = holders.keys.sorted()
        guard !ids.isEmpty else { return }
        do {
            let renewed = Set(try await ledger.heartbeat(runIDs: ids))
            let now = ContinuousClock.now
            for id in ids {
                guard holders[id] != nil else { continue }  // released while the renewal ran
                if renewed.contains(id) {
                    holders[id]?.lastRenewal = now
                } else if lose(id) {
                    logger.error(
                        "the run is no longer running in the ledger (abandoned by another process); stopping",
                        metadata: ["run_id": "\(id)"])
                }
            }
        } catch {
            logger.warning("heartbeat failed", metadata: ["error": "\(error)", "runs": "\(ids.count)"])
            let now = ContinuousClock.now
            for id in ids {
                guard let holder = holders[id], now - holder.lastRenewal > fenceAfter, lose(id) else { continue }
                logger.error(
                    "the lease could not be renewed for \(DurationParser.format(fenceAfter)); stopping",
                    metadata: ["run_id": "\(id)"])
            }
        }
    }

    /// Drops the lease and stops its run; whether that stopped it.
    private func lose(_ id: Int64) -> Bool {
        guard let holder = holders.removeValue(forKey: id) else { return false }
        guard let lost = holder.lost else {
            lostEarly.insert(id)
            return true
        }
        return lost()
    }
}
