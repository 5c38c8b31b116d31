import Foundation
import StandardAgents
import Testing

@testable import Engine
@testable import JobTable
@testable import Ledger
import TestSupport

/// The rules of `retries:` alone, with no database: what follows an attempt, when, and why not.
@Suite("Retry policy and run budget, pure")
struct RetryPolicyTests {
    /// An attempt as the policy sees it.
    struct Attempt: RunAttempt {
        var attempt: Int
        var status: RunStatus
        var isPermanentFailure = false
        var retryAt: Date?
    }

    /// Hourly, catchup 30 min, two retries from 1 min doubling to at most 10 min.
    static func job(catchup: String = "30m") throws -> Job {
        let text = """
            jobs:
              report:
                command: ["true"]
                schedule: "0 * * * *"
                catchup: \(catchup)
                retries: {max: 2, backoff: 1m, max_backoff: 10m}
            """
        return try #require(try JobTableLoader(environment: [:], agents: .standard).load(text: text, path: "j.yaml").jobs.first)
    }

    static let slot = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01T00:00:00Z

    @Test("a slot's failed attempt: its recorded due time, the attempt after it, and none past the last retry")
    func scheduledAttempts() throws {
        let policy = RetryPolicy(job: try Self.job(), slot: Self.slot, origin: .schedule)
        #expect(policy.deadline == Self.slot.addingTimeInterval(1800))
        #expect(policy.nextSlot == Self.slot.addingTimeInterval(3600))
        let now = Self.slot.addingTimeInterval(10)
        let due = Self.slot.addingTimeInterval(70)
        #expect(policy.next(after: Attempt(attempt: 1, status: .failed, retryAt: due), now: now) == .attempt(2, due: due))
        #expect(policy.next(after: Attempt(attempt: 2, status: .timedOut, retryAt: due), now: now) == .attempt(3, due: due))
        // The third attempt was the last that `max: 2` allows.
        #expect(policy.next(after: Attempt(attempt: 3, status: .failed, retryAt: due), now: now) == .none)
        // Success, a skip, an interruption or a permanent failure have no successor.
        for status in [RunStatus.succeeded, .skipped, .interrupted, .missed] {
            #expect(policy.next(after: Attempt(attempt: 1, status: status, retryAt: due), now: now) == .none)
        }
        #expect(
            policy.next(after: Attempt(attempt: 1, status: .failed, isPermanentFailure: true, retryAt: due), now: now)
                == .none)
        // An abandoned attempt found with no due time is retried at once.
        #expect(policy.next(after: Attempt(attempt: 1, status: .abandoned), now: now) == .attempt(2, due: nil))
    }

    @Test("a due time at or past the bound is skipped with why: past catchup, or superseded by the next slot")
    func bounds() throws {
        let catchupFirst = RetryPolicy(job: try Self.job(), slot: Self.slot, origin: .schedule)
        let late = Self.slot.addingTimeInterval(1800)
        #expect(
            catchupFirst.next(after: Attempt(attempt: 1, status: .failed, retryAt: late), now: Self.slot)
                == .skip(attempt: 2, reason: "past catchup (30m) after its slot"))
        // With a catchup longer than the period, the next slot is the bound.
        let slotFirst = RetryPolicy(job: try Self.job(catchup: "2h"), slot: Self.slot, origin: .schedule)
        #expect(slotFirst.deadline == Self.slot.addingTimeInterval(3600))
        #expect(
            slotFirst.next(
                after: Attempt(attempt: 2, status: .failed, retryAt: Self.slot.addingTimeInterval(3600)), now: Self.slot)
                == .skip(attempt: 3, reason: "superseded: slot 2026-01-01T01:00:00Z began before this retry ran"))
        // Just inside the bound still runs.
        let inside = Self.slot.addingTimeInterval(3599)
        #expect(
            slotFirst.next(after: Attempt(attempt: 1, status: .failed, retryAt: inside), now: Self.slot)
                == .attempt(2, due: inside))
    }

    @Test("a manual run: no bound, its delay from now in the upper half of the backoff, nothing recorded as due")
    func manualRun() throws {
        let policy = RetryPolicy(job: try Self.job(catchup: "1m"), slot: Self.slot, origin: .manual)
        #expect(policy.deadline == nil && policy.nextSlot == nil)
        let now = Self.slot.addingTimeInterval(7200)
        // The retry_at a slot's attempt would carry is ignored: the delay counts from now.
        let first = Attempt(attempt: 1, status: .failed, retryAt: Self.slot)
        #expect(policy.next(after: first, now: now, random: { $0.lowerBound }) == .attempt(2, due: now.addingTimeInterval(30)))
        #expect(policy.next(after: first, now: now, random: { $0.upperBound }) == .attempt(2, due: now.addingTimeInterval(60)))
        // Doubled for the next retry.
        let second = Attempt(attempt: 2, status: .failed)
        #expect(policy.next(after: second, now: now, random: { $0.upperBound }) == .attempt(3, due: now.addingTimeInterval(120)))
        #expect(policy.recordedRetryAfter(attempt: 1) == nil)
        let scheduled = RetryPolicy(job: try Self.job(), slot: Self.slot, origin: .schedule)
        #expect(scheduled.recordedRetryAfter(attempt: 1) != nil)
        #expect(scheduled.recordedRetryAfter(attempt: 3) == nil)
    }

    @Test("the budget: deadline, lease and fence from the heartbeat, and the statement backstop within int4")
    func budget() {
        let start = ContinuousClock.now
        let budget = RunBudget(timeout: .seconds(600), started: start, heartbeatInterval: .seconds(5))
        #expect(budget.deadline == start + .seconds(600))
        // 5 s heartbeats: a 30 s lease, stepped aside after 20 s (less a heartbeat and the grace).
        #expect(RunBudget.lease(heartbeatInterval: .seconds(5)) == .seconds(30))
        #expect(budget.fenceAfter == .seconds(20))
        #expect(RunBudget.lease(heartbeatInterval: .seconds(20)) == .seconds(120))
        #expect(RunBudget.fence(heartbeatInterval: .seconds(20)) == .seconds(95))
        // Never shorter than a heartbeat, however short the lease.
        #expect(RunBudget.fence(heartbeatInterval: .seconds(1)) == .seconds(24))
        // What is left plus the backstop; at least a second; at most int4 milliseconds.
        #expect(RunBudget.statementTimeoutMs(until: start + .seconds(600), now: start) == 602_000)
        #expect(RunBudget.statementTimeoutMs(until: start - .seconds(60), now: start) == 1000)
        #expect(RunBudget.statementTimeoutMs(until: start + .seconds(40 * 86_400), now: start) == Int64(Int32.max))
    }
}
