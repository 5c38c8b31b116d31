import Foundation
import HTTPClients
import JobTable
import Ledger
import Logging
import PostgresClient
import RunnerSupport

/// What follows a run's first attempt: its retries (``RetryPolicy``), its last ping and its
/// notifications.
extension OnceRunner {
    /// Runs a run's attempts; when they throw, the start ping in flight is still delivered
    /// (at most its 3 s) before the error goes on, so a process about to exit does not drop it.
    static func flushingPing(
        _ ping: HealthPing?, _ attempts: () async throws -> Outcome
    ) async throws -> Outcome {
        do {
            return try await attempts()
        } catch {
            await ping?.flush()
            throw error
        }
    }

    /// What follows a run's last attempt: its ping, and its notifications (failed, recovered,
    /// timed out) when no retry of it is due.
    func finished(_ ping: HealthPing?, job: Job, outcome: Outcome) async {
        await Self.finalPing(ping, job: job, outcome: outcome)
        guard case .ran(let last, _) = outcome else { return }
        if last.retryAt != nil, last.allowsRetry(max: job.retries.max) {
            // A retry is still due, unless this call gave it up (recorded skipped: past the next
            // slot or catchup): then this attempt was the slot's last.
            let latest = try? await executor.ledger.latestAttempt(job: job.name, slot: last.slot, origin: last.origin)
            guard latest?.status == .skipped else { return }
        }
        let now = (try? await currentInstant().now) ?? Date()
        await executor.notifier.afterRun(last, job: job, now: now)
    }

    /// The last ping of a run that made at least one attempt: success or fail, with a summary.
    static func finalPing(_ ping: HealthPing?, job: Job, outcome: Outcome) async {
        guard let ping, case .ran(let last, _) = outcome else { return }
        var summary = "run \(last.id) of \(job.name) \(last.status.rawValue)"
        if last.attempt > 1 { summary += " (attempt \(last.attempt))" }
        if let error = last.error { summary += ": \(error)" }
        // Its own task: after SIGTERM this task is cancelled, and the last ping must still go.
        let event: HealthPing.Signal = last.status == .succeeded ? .success : .fail
        await Task { await ping.send(event, summary: summary) }.value
    }

    /// Retries a failed, timed-out or abandoned run up to `retries.max` times.
    ///
    /// A scheduled slot's retries are rows: each failed attempt's end records when its
    /// successor is due (`retry_at`), so a process that dies while it waits loses nothing (the
    /// next `runner once` claims it). Each attempt claims a key of its own (`SLOT#2`, …), so
    /// however many processes hold the failed slot, one makes each attempt; it obeys
    /// `overlap: skip` as a slot does, and never starts once the job's next slot has begun or
    /// past `catchup`: the claim itself refuses then, on the database's clock, and the attempt
    /// is recorded skipped with why. A due time that lies past that bound is recorded skipped
    /// at once, not slept to.
    ///
    /// A manual run's retries live in this process only (someone at a terminal started it):
    /// nothing is recorded as due for a later call, and none of it holds a slot.
    ///
    /// `ranFirst`: this call made `first`. When it did not and makes no attempt either, the
    /// outcome is the slot's latest attempt, not `first`'s failure again; when it does make
    /// one, `ping` hears its start.
    package func retried(
        _ first: RunRecord, job: Job, slot: Date, slotKey: String, ranFirst: Bool = true, ping: HealthPing? = nil
    ) async throws -> Outcome {
        let ledger = executor.ledger
        let origin = first.origin
        let policy = RetryPolicy(job: job, slot: slot, origin: origin)
        var earlier: [RunRecord] = []
        var last = first
        var latest = first
        // The database's clock is read only when a successor may follow: a run that ends the
        // slot (every success) costs no statement more, and cannot fail after its end is written.
        attempts: while last.allowsRetry(max: job.retries.max) {
            let now = try await currentInstant().now
            let attempt: Int
            switch policy.next(after: last, now: now) {
            case .none:
                break attempts
            case .skip(let skipped, let reason):
                try await ledger.recordSkippedAttempt(
                    job: job.name, slot: slot, slotKey: Ledger.attemptKey(slotKey, attempt: skipped), origin: origin,
                    attempt: skipped, reason: reason)
                break attempts
            case .attempt(let next, let due):
                attempt = next
                if let due, due > now {
                    let wait = Duration.milliseconds(Int64((due.timeIntervalSince(now) * 1000).rounded()))
                    executor.logger.warning(
                        "run \(last.status.rawValue); retrying",
                        metadata: [
                            "job": "\(job.name)", "run_id": "\(last.id)", "attempt": "\(attempt)",
                            "of": "\(job.retries.max + 1)", "in": "\(DurationParser.format(wait))",
                        ])
                    do { try await Task.sleep(for: wait) } catch { break attempts }
                }
            }
            let key = Ledger.attemptKey(slotKey, attempt: attempt)
            let claim = try await ledger.claim(
                Ledger.ClaimRequest(
                    job: job.name, slot: slot, slotKey: key, trigger: .retry, origin: origin, attempt: attempt,
                    claimedBy: Ledger.processIdentity, lease: executor.lease,
                    skipIfRunning: job.overlap == .skip && !policy.manual, notAfter: policy.deadline, gate: gate))
            switch claim {
            case .claimed(let runID):
                if !ranFirst, earlier.isEmpty { ping?.start() }
                earlier.append(last)
                last = try await executor.execute(
                    runID: runID, job: job, slot: slot, dryRun: false, now: try await currentInstant().now,
                    retryAfter: policy.recordedRetryAfter(attempt: attempt))
                latest = last
                continue
            case .tooLate:
                let at = try await currentInstant().now
                if let id = try await ledger.recordSkippedAttempt(
                    job: job.name, slot: slot, slotKey: key, origin: origin, attempt: attempt,
                    reason: policy.whyNot(at: at)),
                    let skipped = try await ledger.run(id: id)
                {
                    latest = skipped
                }
            case .skipped(let skippedID, let liveRunID):
                // Beside the job's live run, as a slot would be.
                if !ranFirst, earlier.isEmpty { return .skipped(runID: skippedID, liveRunID: liveRunID, slot: slot) }
            case .stopped:
                // Shutting down: the retry's due time is in the ledger for another process.
                break
            case .taken:
                // Another process made this attempt.
                if let current = try await ledger.latestAttempt(job: job.name, slot: slot, origin: origin) {
                    latest = current
                }
            }
            break
        }
        if !ranFirst, earlier.isEmpty { return .alreadyClaimed(latest) }
        return .ran(last, earlier: earlier)
    }
}
