import Foundation
import HTTPClients
import JobTable
import Ledger
import Logging
import PostgresClient
import RunnerSupport

/// `runner once JOB`: claims the job's latest slot within its catch-up window and runs it, or
/// does nothing if that slot is already taken. A run that fails or times out is retried per
/// the job's `retries:` (exponential backoff with jitter), each attempt a run of its own.
public struct OnceRunner: Sendable {
    public enum Outcome: Sendable {
        /// The last attempt, and the failed ones before it, oldest first.
        case ran(RunRecord, earlier: [RunRecord] = [])
        /// The slot was already taken: its latest attempt (running, finished, or retry due later).
        case alreadyClaimed(RunRecord)
        case skipped(runID: Int64, liveRunID: Int64, slot: Date)
        /// The latest slot lies before the catch-up window: recorded as missed (`runID` nil when
        /// that slot already had a row), not run.
        case missed(runID: Int64?, slot: Date, next: Date?)
        /// The schedule has no slot in the past year.
        case noSlot(next: Date?)
        /// The latest slot lies past catchup and before the job's definition (its schedule took its
        /// present form later): the job owes nothing for it, and nothing is recorded.
        case beforeDefinition(slot: Date, definedAt: Date, next: Date?)
        /// The job is paused (`runner pause`): its slot is recorded skipped (`runID` nil when
        /// another call recorded it), not run.
        case paused(runID: Int64?, slot: Date, pause: Ledger.Pause)
    }

    public let executor: RunExecutor
    /// The clock slots are computed from; nil: the ledger's database (``Ledger/databaseNow()``),
    /// so a host whose clock is off claims exactly the slot every other host claims.
    public let now: (@Sendable () -> Date)?
    /// Every scheduled claim (a slot, a retry) passes it; a scheduler shutting down closes it.
    public let gate: ClaimGate
    /// Claims refused in a row, shared by every slot this runner makes (the log and `/health`).
    public let claimTrouble = ClaimTrouble()

    public init(executor: RunExecutor, now: (@Sendable () -> Date)? = nil, gate: ClaimGate = ClaimGate()) {
        self.executor = executor
        self.now = now
        self.gate = gate
    }

    /// A slot not claimed because the gate was closed (a shutdown), or its job left the table
    /// while its claim was being tried again: left to another process, or to nobody.
    public struct ClaimsStopped: Error, CustomStringConvertible {
        public var description: String { "not claimed: this process is shutting down" }
    }

    /// The instant this call works from, and how far the host's clock is from it (ms).
    package func currentInstant() async throws -> (now: Date, skewMs: Double) {
        if let now { return (now(), 0) }
        let (database, skew, halfTrip) = try await executor.ledger.clockReading()
        // Said once every ten minutes per process, not after every run of a scheduler.
        if abs(skew) > 1000 + halfTrip * 1000, Self.skewWarned.withLock({ last in
            guard last.map({ ContinuousClock.now - $0 > .seconds(600) }) ?? true else { return false }
            last = .now
            return true
        }) {
            executor.logger.warning(
                "this host's clock differs from the database's; slots follow the database",
                metadata: ["clock_skew_ms": "\(Int64(skew))"])
        }
        return (database, skew)
    }

    /// When this process last warned of clock skew.
    private static let skewWarned = Locked<ContinuousClock.Instant?>(nil)

    /// `retry: false` runs one attempt whatever the job's `retries:` say (`runner demo`).
    /// `table`: the whole job table, whose missed slots this call looks for first (before its
    /// own claim moves its job's latest slot), and whose notifications left pending it sends
    /// after its run.
    public func run(_ job: Job, force: Bool = false, dryRun: Bool = false, retry: Bool = true, table: [Job] = [])
        async throws -> Outcome
    {
        let ledger = executor.ledger
        let (now, skewMs) = try await currentInstant()
        try await ledger.registerJobs([job], at: now)
        // Missed slots and their notifications are recorded before the run (so a run that is
        // then killed loses none) and sent after it (so telling people never delays it).
        let found = try await checkMissed(table, now: now)
        let outcome = try await runChecked(
            job, force: force, dryRun: dryRun, retry: retry, now: now, skewMs: skewMs, found: found)
        if !table.isEmpty { await executor.notifier.finishPending(jobs: table) }
        return outcome
    }

    /// The table's missed slots, recorded (and logged) once; a failure to look is logged and
    /// never stops the job's own run. Returns the rows this call wrote.
    private func checkMissed(_ table: [Job], now: Date) async throws -> [Ledger.WrittenSlot] {
        guard !table.isEmpty else { return [] }
        do {
            let missed = try await MissedSlots.record(
                jobs: table, ledger: executor.ledger, now: now, notifier: executor.notifier)
            if !missed.isEmpty {
                let jobs = Set(missed.map(\.job)).sorted()
                executor.logger.warning(
                    "slots missed: no run started within their catchup",
                    metadata: [
                        "count": "\(missed.count)", "job": "\(jobs.joined(separator: ","))",
                        "latest": "\(missed.map(\.slot).max().map(Ledger.slotKey(for:)) ?? "")",
                    ])
            }
            return missed
        } catch let error as PostgresError where error.kind == .connection {
            throw error
        } catch {
            executor.logger.warning("cannot look for missed slots", metadata: ["error": "\(error)"])
            return []
        }
    }

    /// `found`: the missed rows this call's check wrote (the job's own passed slot among them).
    private func runChecked(
        _ job: Job, force: Bool, dryRun: Bool, retry: Bool, now: Date, skewMs: Double, found: [Ledger.WrittenSlot] = []
    ) async throws -> Outcome {
        let ledger = executor.ledger
        if force || dryRun {
            // A manual or dry run gets a key of its own and never uses up a cron slot.
            // The key only needs to be unique; what the run is, is its origin.
            let origin: RunOrigin = dryRun ? .dryRun : .manual
            let slotKey = "\(dryRun ? "dry-run" : "manual"):\(UUID().uuidString.lowercased())"
            try await ledger.markAbandoned(job: job.name)
            let claim = try await ledger.claim(
                Ledger.ClaimRequest(
                    job: job.name, slot: now, slotKey: slotKey, trigger: .manual, origin: origin,
                    claimedBy: Ledger.processIdentity, lease: executor.lease, skipIfRunning: false))
            guard case .claimed(let runID) = claim else {
                throw LedgerError("the manual run's own key \(slotKey) was taken")
            }
            try await ledger.recordMetrics([Metric("clock_skew_ms", skewMs, unit: "ms")], runID: runID, job: job.name)
            let ping = dryRun ? nil : job.pingURL.map { HealthPing(url: $0, logger: executor.logger) }
            ping?.start()
            let outcome = try await Self.flushingPing(ping) {
                let first = try await executor.execute(runID: runID, job: job, slot: now, dryRun: dryRun, now: now)
                return retry && !dryRun
                    ? try await retried(first, job: job, slot: now, slotKey: slotKey, ping: ping) : .ran(first)
            }
            await finished(ping, job: job, outcome: outcome)
            return outcome
        }
        guard let slot = job.schedule.previous(atOrBefore: now, within: job.catchup) else {
            return try await late(job, now: now, found: found)
        }
        return try await runSlot(job, slot: slot, now: now, skewMs: skewMs, trigger: .once, retry: retry)
    }

    /// Claims `slot` of `job` and runs it, under the job's overlap and retry rules: the one
    /// path of `runner once` and `runner schedule` (`trigger` says which, and whether the
    /// slot is a catch-up). `now` is the database's clock at the call.
    /// `inTable`: whether the job is still in the scheduler's table, asked before each try of the
    /// claim (a SIGHUP reload that removed it ends the tries: ``ClaimsStopped``).
    public func runSlot(
        _ job: Job, slot: Date, now: Date, skewMs: Double = 0, trigger: RunTrigger, retry: Bool = true,
        inTable: @escaping @Sendable () -> Bool = { true }
    ) async throws -> Outcome {
        let ledger = executor.ledger
        let slotKey = Ledger.slotKey(for: slot)
        // Tried again within the window (a backfill's long-past slots have none: tried once).
        let window = trigger == .backfill ? .zero : Self.claimWindow(job, slot: slot, now: now)
        let claimBy = ContinuousClock.now + window
        let tries = Locked(0)
        let step = try await retrying(
            for: window, firstDelay: .milliseconds(250), maxDelay: .seconds(2), when: \.mayPassForWrites,
            onRetry: { error in
                tries.withLock { $0 += 1 }
                claimTrouble.refused(job: job.name, slot: slotKey, error: error, logger: executor.logger)
            }
        ) {
            // A try after a refusal must land within the window (a first try never runs late
            // beside its successor, however long it queued for the connection).
            guard inTable() else { throw ClaimsStopped() }
            return try await claimStep(
                job, slot: slot, slotKey: slotKey, trigger: trigger, claimBy: tries.withLock { $0 } > 0 ? claimBy : nil)
        }
        claimTrouble.landed(logger: executor.logger)
        var claim: Ledger.ClaimResult
        switch step {
        case .settled(let outcome): return outcome
        case .claim(let result): claim = result
        }
        if case .taken(let runID, .running) = claim, tries.withLock({ $0 }) > 0,
            let row = try await ledger.run(id: runID), row.claimedBy == Ledger.processIdentity, row.attempt == 1
        {
            // A refused try's INSERT committed before its answer was lost: the row is this call's
            // own (no other task of this process makes this slot), and nobody else will run it.
            executor.logger.notice(
                "the slot's claim had landed before its answer was lost; running it",
                metadata: ["job": "\(job.name)", "run_id": "\(runID)"])
            claim = .claimed(runID: runID)
        }
        let ping = job.pingURL.map { HealthPing(url: $0, logger: executor.logger) }
        switch claim {
        case .taken(let runID, .missed):
            // A later call found the slot past its catchup first and recorded it missed.
            return .missed(runID: runID, slot: slot, next: job.schedule.next(after: now))
        case .taken:
            // The slot ran, or runs. Its latest attempt says what is left: a run whose process is
            // gone (a stale heartbeat) is marked abandoned, and an abandoned attempt, or a failed
            // one whose retry is due (its process may be long gone), is retried by this call.
            guard var latest = try await ledger.latestAttempt(job: job.name, slot: slot) else {
                throw LedgerError("slot \(slotKey) of \(job.name) is taken but has no attempt")
            }
            if latest.status == .running, try await ledger.markAbandoned(job: job.name) > 0,
                let reread = try await ledger.run(id: latest.id)
            {
                latest = reread
            }
            let due = latest.status == .abandoned || latest.retryAt.map { $0 <= now } == true
            guard retry, due, latest.allowsRetry(max: job.retries.max) else { return .alreadyClaimed(latest) }
            executor.logger.warning(
                "the slot's attempt \(latest.attempt) \(latest.status.rawValue) and its retry is due; running it",
                metadata: ["job": "\(job.name)", "after_run_id": "\(latest.id)", "attempt": "\(latest.attempt + 1)"])
            let outcome = try await Self.flushingPing(ping) {
                try await retried(latest, job: job, slot: slot, slotKey: slotKey, ranFirst: false, ping: ping)
            }
            await finished(ping, job: job, outcome: outcome)
            return outcome
        case .tooLate:
            throw ClaimWindowEnded(job: job.name, slot: slotKey)
        case .stopped:
            throw ClaimsStopped()
        case .skipped(let runID, let liveRunID):
            // The slot began, skipped or not: earlier slots' retries are overtaken by it.
            try await ledger.supersedeRetries(job: job.name, before: slot, maxRetries: job.retries.max)
            executor.logger.info(
                "slot skipped: the previous run is still running",
                metadata: ["job": "\(job.name)", "run_id": "\(runID)", "live_run_id": "\(liveRunID)"])
            try await ledger.recordMetrics([Metric("skipped", 1)], runID: runID, job: job.name)
            return .skipped(runID: runID, liveRunID: liveRunID, slot: slot)
        case .claimed(let runID):
            // The lease is kept from the claim: behind a busy connection the steps before the
            // work may take longer than a lease, and the run must not look abandoned meanwhile.
            await executor.leases.hold(runID)
            do {
                try await retrying(
                    for: Self.afterClaimPatience, firstDelay: .milliseconds(250), maxDelay: .seconds(2),
                    when: \.mayPassForWrites
                ) {
                    if job.overlap == .replace {
                        // Once the slot is ours (a shutdown between the two leaves the earlier run
                        // alone), the earlier slots' live runs stop: their next heartbeat finds them
                        // interrupted.
                        try await ledger.interruptLiveRuns(
                            job: job.name, before: slot, reason: "replaced by slot \(slotKey)")
                    }
                    // Retries of earlier slots that never ran are overtaken by this one.
                    try await ledger.supersedeRetries(job: job.name, before: slot, maxRetries: job.retries.max)
                    // A backfill runs long-past slots on purpose: its lateness is no scheduling delay.
                    try await ledger.recordMetrics(
                        [Metric("clock_skew_ms", skewMs, unit: "ms")], runID: runID, job: job.name,
                        scheduleDelay: trigger != .backfill)
                }
            } catch {
                // The row stays `running` without a lease: the sweep marks it abandoned, and its
                // retry is due at once.
                await executor.leases.release(runID)
                throw error
            }
            ping?.start()
            let outcome = try await Self.flushingPing(ping) {
                let first = try await executor.execute(
                    runID: runID, job: job, slot: slot, dryRun: false, now: now,
                    retryAfter: retry ? RetryPolicy(job: job, slot: slot, origin: .schedule).retryAfter(attempt: 1) : nil)
                return retry ? try await retried(first, job: job, slot: slot, slotKey: slotKey) : .ran(first)
            }
            await finished(ping, job: job, outcome: outcome)
            return outcome
        }
    }

    /// Called later than `catchup` after the slot it was called for. A slot that has rows
    /// reports its latest attempt (and a retry of it that is due is recorded skipped: it is
    /// past catchup too); a slot without any is recorded `missed`, not lost.
    private func late(_ job: Job, now: Date, found: [Ledger.WrittenSlot] = []) async throws -> Outcome {
        let ledger = executor.ledger
        guard let passed = job.schedule.previous(atOrBefore: now, within: .seconds(366 * 86_400)) else {
            return .noSlot(next: job.schedule.next(after: now))
        }
        let slotKey = Ledger.slotKey(for: passed)
        if let paused = try await pausedOutcome(job, slot: passed, trigger: .once) { return paused }
        try await ledger.markAbandoned(job: job.name)
        // The passed slot began, whether it ran or not: earlier slots' retries are overtaken.
        try await ledger.supersedeRetries(job: job.name, before: passed, maxRetries: job.retries.max)
        if let latest = try await ledger.latestAttempt(job: job.name, slot: passed) {
            if latest.status == .missed {
                // Recorded by this call's own check, or earlier by another.
                let mine = found.first { $0.job == job.name && $0.slot == passed }?.id
                return .missed(runID: mine, slot: passed, next: job.schedule.next(after: now))
            }
            if latest.retryAt != nil || latest.status == .abandoned, latest.allowsRetry(max: job.retries.max),
                let id = try await ledger.recordSkippedAttempt(
                    job: job.name, slot: passed, slotKey: Ledger.attemptKey(slotKey, attempt: latest.attempt + 1),
                    attempt: latest.attempt + 1, reason: RetryPolicy.pastCatchup(job.catchup)),
                let skipped = try await ledger.run(id: id)
            {
                return .alreadyClaimed(skipped)
            }
            return .alreadyClaimed(latest)
        }
        // A slot with no row from before the job's definition is owed nothing.
        if let definedAt = try await ledger.slotHistories(jobs: [job.name])[job.name]?.definedAt, passed < definedAt {
            return .beforeDefinition(slot: passed, definedAt: definedAt, next: job.schedule.next(after: now))
        }
        let late = DurationParser.format(.seconds(Int64(now.timeIntervalSince(passed))))
        let runID = try await ledger.recordMissed(
            job: job.name, slot: passed,
            reason: "missed: runner once was called \(late) after the slot, later than its catchup "
                + "(\(DurationParser.format(job.catchup)))")
        if runID == nil, let latest = try await ledger.latestAttempt(job: job.name, slot: passed),
            latest.status != .missed
        {
            // Claimed by a call that was in time, between our look and our write.
            return .alreadyClaimed(latest)
        }
        executor.logger.warning(
            "slot missed: called later than its catchup",
            metadata: ["job": "\(job.name)", "slot": "\(slotKey)", "late": "\(late)"])
        if let runID {
            await executor.notifier.recordMissed(
                [Ledger.WrittenSlot(id: runID, job: job.name, slot: passed)], jobs: [job.name: job], now: now)
        }
        return .missed(runID: runID, slot: passed, next: job.schedule.next(after: now))
    }

    /// When `job` is paused: its `slot` recorded skipped, reason paused (visible, and never
    /// missed), as the outcome; nil when it is not paused.
    func pausedOutcome(_ job: Job, slot: Date, trigger: RunTrigger) async throws -> Outcome? {
        let ledger = executor.ledger
        guard let pause = try await ledger.activePauses(jobs: [job.name])[job.name] else { return nil }
        let why = "paused" + (pause.reason.map { ": \($0)" } ?? "")
        let written = try await ledger.recordPaused([job.name: [slot]], trigger: trigger, reason: why)
        return .paused(runID: written.first?.id, slot: slot, pause: pause)
    }
}
