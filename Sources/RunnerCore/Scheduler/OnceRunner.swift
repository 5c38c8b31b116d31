import Foundation
import Logging

/// `runner once JOB`: claims the job's latest slot within its catch-up window and runs it, or
/// does nothing if that slot is already taken. A run that fails or times out is retried per
/// the job's `retries:` (exponential backoff with jitter), each attempt a run of its own.
public struct OnceRunner: Sendable {
    public enum Outcome: Sendable {
        /// The last attempt, and the failed ones before it, oldest first.
        case ran(RunRecord, earlier: [RunRecord] = [])
        case alreadyClaimed(runID: Int64, status: RunStatus, slot: Date)
        case skipped(runID: Int64, liveRunID: Int64, slot: Date)
        /// The latest slot lies before the catch-up window: recorded as missed (`runID` nil when
        /// that slot already had a row), not run.
        case missed(runID: Int64?, slot: Date, next: Date?)
        /// The schedule has no slot in the past year.
        case noSlot(next: Date?)
    }

    public let executor: RunExecutor
    /// The clock slots are computed from; nil: the ledger's database (``Ledger/databaseNow()``),
    /// so a host whose clock is off claims exactly the slot every other host claims.
    public let now: (@Sendable () -> Date)?

    public init(executor: RunExecutor, now: (@Sendable () -> Date)? = nil) {
        self.executor = executor
        self.now = now
    }

    /// The instant this call works from, and how far the host's clock is from it (ms).
    func currentInstant() async throws -> (now: Date, skewMs: Double) {
        if let now { return (now(), 0) }
        let host = Date()
        let database = try await executor.ledger.databaseNow()
        let skew = ((host.timeIntervalSince(database)) * 1000).rounded()
        if abs(skew) > 1000 {
            executor.logger.warning(
                "this host's clock differs from the database's; slots follow the database",
                metadata: ["clock_skew_ms": "\(Int64(skew))"])
        }
        return (database, skew)
    }

    /// `retry: false` runs one attempt whatever the job's `retries:` say (`runner demo`).
    public func run(_ job: Job, force: Bool = false, dryRun: Bool = false, retry: Bool = true) async throws -> Outcome {
        let ledger = executor.ledger
        let (now, skewMs) = try await currentInstant()
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
                // Called too late for the slot it was called for: that is recorded, not lost.
                guard let passed = job.schedule.previous(atOrBefore: now, within: .seconds(366 * 86_400)) else {
                    return .noSlot(next: job.schedule.next(after: now))
                }
                let late = DurationParser.format(.seconds(Int64(now.timeIntervalSince(passed))))
                let runID = try await ledger.recordMissed(
                    job: job.name, slot: passed,
                    reason: "missed: runner once was called \(late) after the slot, later than its catchup "
                        + "(\(DurationParser.format(job.catchup)))")
                executor.logger.warning(
                    "slot missed: called later than its catchup",
                    metadata: ["job": "\(job.name)", "slot": "\(Ledger.slotKey(for: passed))", "late": "\(late)"])
                return .missed(runID: runID, slot: passed, next: job.schedule.next(after: now))
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
            // A failed attempt of this slot whose retry is due (its process may be long gone):
            // this call makes it.
            if retry, !dryRun, !force, let due = try await ledger.dueRetry(job: job.name, slotKey: slotKey),
                due.status == .failed || due.status == .timedOut, due.attempt <= job.retries.max
            {
                executor.logger.info(
                    "a retry of this slot is due; running it",
                    metadata: ["job": "\(job.name)", "after_run_id": "\(due.id)", "attempt": "\(due.attempt + 1)"])
                return try await retried(due, job: job, slot: slot, slotKey: slotKey, ranFirst: false)
            }
            // A run of this slot whose process is gone (a stale heartbeat) is a failed attempt:
            // it is marked abandoned and the slot is retried per `retries:`, not lost.
            if retry, !dryRun, !force, status == .running || status == .abandoned {
                if status == .running { try await ledger.markAbandoned(job: job.name) }
                if let latest = try await ledger.latestAttempt(job: job.name, slotKey: slotKey),
                    latest.status == .abandoned, latest.attempt <= job.retries.max
                {
                    executor.logger.warning(
                        "the slot's run was abandoned (its process is gone); retrying",
                        metadata: ["job": "\(job.name)", "run_id": "\(latest.id)"])
                    return try await retried(latest, job: job, slot: slot, slotKey: slotKey)
                }
            }
            let current = try await ledger.run(id: runID)?.status ?? status
            return .alreadyClaimed(runID: runID, status: current, slot: slot)
        case .skipped(let runID, let liveRunID):
            executor.logger.info(
                "slot skipped: the previous run is still running",
                metadata: ["job": "\(job.name)", "run_id": "\(runID)", "live_run_id": "\(liveRunID)"])
            try await ledger.recordMetrics([Metric("skipped", 1)], runID: runID, job: job.name)
            return .skipped(runID: runID, liveRunID: liveRunID, slot: slot)
        case .claimed(let runID):
            let delay = now.timeIntervalSince(slot)
            // Retries of earlier slots that never ran are overtaken by this one.
            if trigger == .once { try await ledger.supersedeRetries(job: job.name, before: slot) }
            var metrics = [Metric("clock_skew_ms", skewMs, unit: "ms")]
            if trigger == .once { metrics.append(Metric("schedule_delay_ms", (delay * 1000).rounded(), unit: "ms")) }
            try await ledger.recordMetrics(metrics, runID: runID, job: job.name)
            // A dry run sends nothing, pings included.
            let ping = dryRun ? nil : job.pingURL.map { HealthPing(url: $0, logger: executor.logger) }
            await ping?.send(.start)
            let first = try await executor.execute(
                runID: runID, job: job, slot: slot, dryRun: dryRun, now: now,
                retryAfter: retry && !dryRun ? Self.retryDelay(after: 1, job: job) : nil)
            let outcome =
                retry && !dryRun ? try await retried(first, job: job, slot: slot, slotKey: slotKey) : .ran(first)
            if let ping, case .ran(let last, _) = outcome {
                var summary = "run \(last.id) of \(job.name) \(last.status.rawValue)"
                if last.attempt > 1 { summary += " (attempt \(last.attempt))" }
                if let error = last.error { summary += ": \(error)" }
                // Its own task: after SIGTERM this task is cancelled, and the last ping must still go.
                let event: HealthPing.Signal = last.status == .succeeded ? .success : .fail
                await Task { await ping.send(event, summary: summary) }.value
            }
            return outcome
        }
    }

    /// The wait before the attempt after `attempt`, when `retries:` allow one.
    static func retryDelay(after attempt: Int, job: Job) -> Duration? {
        attempt <= job.retries.max ? job.retries.delay(beforeAttempt: attempt + 1) : nil
    }

    /// Retries a failed or timed-out run up to `retries.max` times. Each attempt's due time is a
    /// row (`retry_at`, written with the failed attempt's end), so a process that dies while it
    /// waits loses nothing: the next `runner once` claims it. Each attempt claims a key of its
    /// own (`SLOT#2`, `SLOT#3`, …), so however many processes hold the failed slot, one makes
    /// each attempt; it obeys `overlap: skip` as a slot does, and never starts once the job's
    /// next slot has begun or past `catchup` (it is recorded skipped, with why). A SIGTERM
    /// during the wait stops the retries.
    ///
    /// `ranFirst`: this call made `first`. When it did not and makes no attempt either (the
    /// retry was overtaken, or skipped beside a live run), the outcome says so, not `first`'s
    /// failure again.
    func retried(_ first: RunRecord, job: Job, slot: Date, slotKey: String, ranFirst: Bool = true) async throws
        -> Outcome
    {
        let ledger = executor.ledger
        let manual = slotKey.hasPrefix("manual:")
        var earlier: [RunRecord] = []
        var last = first
        while last.status == .failed || last.status == .timedOut || last.status == .abandoned,
            last.attempt <= job.retries.max
        {
            let attempt = last.attempt + 1
            if let due = try await ledger.retryDue(after: last.id) {
                let wait = max(0, due.timeIntervalSince(try await currentInstant().now))
                executor.logger.warning(
                    "run \(last.status.rawValue); retrying",
                    metadata: [
                        "job": "\(job.name)", "run_id": "\(last.id)", "attempt": "\(attempt)",
                        "of": "\(job.retries.max + 1)",
                        "in": "\(DurationParser.format(.milliseconds(Int64((wait * 1000).rounded()))))",
                    ])
                do {
                    try await Task.sleep(for: .milliseconds(Int64((wait * 1000).rounded())))
                } catch {
                    break
                }
            }
            let now = try await currentInstant().now
            let key = "\(slotKey)#\(attempt)"
            if !manual, let next = job.schedule.next(after: slot), next <= now {
                try await ledger.recordSkippedAttempt(
                    job: job.name, slot: slot, slotKey: key, attempt: attempt,
                    reason: "superseded: slot \(Ledger.slotKey(for: next)) began before this retry ran")
                break
            }
            if !manual, now.timeIntervalSince(slot) > job.catchup.timeInterval {
                try await ledger.recordSkippedAttempt(
                    job: job.name, slot: slot, slotKey: key, attempt: attempt,
                    reason: "past catchup (\(DurationParser.format(job.catchup))) after its slot")
                break
            }
            let claim = try await ledger.claim(
                Ledger.ClaimRequest(
                    job: job.name, slot: slot, slotKey: key, trigger: .retry, attempt: attempt,
                    claimedBy: Ledger.processIdentity, lease: executor.lease,
                    skipIfRunning: job.overlap == .skip && !manual))
            // Another process made this attempt, or the job's live run made it skip.
            guard case .claimed(let runID) = claim else {
                if !ranFirst, earlier.isEmpty, case .skipped(let skippedID, let liveRunID) = claim {
                    return .skipped(runID: skippedID, liveRunID: liveRunID, slot: slot)
                }
                break
            }
            earlier.append(last)
            last = try await executor.execute(
                runID: runID, job: job, slot: slot, dryRun: false, now: now,
                retryAfter: Self.retryDelay(after: attempt, job: job))
        }
        if !ranFirst, earlier.isEmpty { return .alreadyClaimed(runID: last.id, status: last.status, slot: slot) }
        return .ran(last, earlier: earlier)
    }
}
