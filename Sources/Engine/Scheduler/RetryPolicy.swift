import Foundation
import JobTable
import Ledger
import RunnerSupport

/// What follows a failed, timed-out or abandoned attempt under the job's `retries:`: whether a
/// successor may start, when, and why not. Pure (no database, no clock of its own), so every
/// rule is tested alone; ``OnceRunner`` claims and records what it decides.
///
/// - An attempt never starts at or after its bound: the job's next slot or the end of the
///   slot's `catchup`, whichever comes first. A manual run (`--force`) has no bound: someone at
///   a terminal started it, and its retries live in that process.
/// - A slot's successor is due when the failed attempt's end recorded it (`retry_at`); an
///   abandoned attempt's from when it was found abandoned (`retry_at` too). A manual run's is
///   due `retries.delay` after now.
package struct RetryPolicy: Sendable {
    package let retries: Job.Retries
    package let manual: Bool
    /// The job's slot after this one; nil for a manual run.
    package let nextSlot: Date?
    /// No attempt starts at or after this instant; nil for a manual run.
    package let deadline: Date?
    private let catchup: Duration

    package init(job: Job, slot: Date, origin: RunOrigin) {
        retries = job.retries
        catchup = job.catchup
        manual = origin != .schedule
        nextSlot = manual ? nil : job.schedule.next(after: slot)
        let catchupEnd = manual ? nil : slot.addingTimeInterval(job.catchup.timeInterval)
        deadline = [nextSlot, catchupEnd].compactMap { $0 }.min()
    }

    /// The decision after `last`.
    package enum Step: Sendable, Equatable {
        /// No successor: the attempt succeeded, failed for good, or was the last `retries:` allows.
        case none
        /// Attempt `attempt` would start too late: recorded skipped with `reason`, never run.
        case skip(attempt: Int, reason: String)
        /// Attempt `attempt` may start at `due` (nil or past: now).
        case attempt(Int, due: Date?)
    }

    /// What follows `last` at `now` (the database's clock). `random` picks the manual delay's
    /// point in its upper half, as ``Job/Retries/delay(beforeAttempt:random:)`` does.
    package func next(
        after last: some RunAttempt, now: Date, random: (ClosedRange<Double>) -> Double = { Double.random(in: $0) }
    ) -> Step {
        guard last.allowsRetry(max: retries.max) else { return .none }
        let attempt = last.attempt + 1
        let due =
            manual
            ? retryAfter(attempt: last.attempt, random: random).map { now + $0.timeInterval }
            : last.retryAt
        if let due, let deadline, due >= deadline { return .skip(attempt: attempt, reason: whyNot(at: due)) }
        return .attempt(attempt, due: due)
    }

    /// How long after attempt `attempt` ends its successor is due, when `retries:` allow one.
    package func retryAfter(
        attempt: Int, random: (ClosedRange<Double>) -> Double = { Double.random(in: $0) }
    ) -> Duration? {
        attempt <= retries.max ? retries.delay(beforeAttempt: attempt + 1, random: random) : nil
    }

    /// What a slot's attempt records as its successor's due delay: none for a manual run, whose
    /// retries are its own process's.
    package func recordedRetryAfter(attempt: Int) -> Duration? {
        manual ? nil : retryAfter(attempt: attempt)
    }

    /// Why an attempt due (or found) at `instant` does not start.
    package func whyNot(at instant: Date) -> String {
        if let nextSlot, instant >= nextSlot {
            return "superseded: slot \(Ledger.slotKey(for: nextSlot)) began before this retry ran"
        }
        return Self.pastCatchup(catchup)
    }

    /// Why a retry did not run because its slot lies more than `catchup` back.
    package static func pastCatchup(_ catchup: Duration) -> String {
        "past catchup (\(DurationParser.format(catchup))) after its slot"
    }
}
