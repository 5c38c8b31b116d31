import Foundation

/// Spaces requests to at most `perSecond`, shared by every sender of one provider, and holds
/// them all when the provider answers 429 with a Retry-After.
package actor RateLimiter {
    private let interval: Duration?
    private var next = ContinuousClock.now

    package init(perSecond: Double?) {
        interval = perSecond.flatMap { $0 > 0 && $0.isFinite ? .seconds(1 / $0) : nil }
    }

    /// Waits for this request's turn; throws if the task is cancelled meanwhile.
    package func wait() async throws {
        let now = ContinuousClock.now
        let slot = max(now, next)
        if let interval { next = slot + interval } else { next = max(next, now) }
        if slot > now { try await Task.sleep(until: slot, clock: .continuous) }
    }

    /// No request starts before `wait` from now.
    package func pause(for wait: Duration) {
        next = max(next, ContinuousClock.now + wait)
    }
}
