import Ledger

/// One effect's way through the outbox after each attempt to perform it, for every channel
/// (email providers, Slack, webhook, Sentry): what the ledger records and what the sender does
/// next. Pure, so every transition is tested without a database or a server.
///
/// ```
/// recorded (pending) ─lease─▶ attempt ─▶ sent
///                                      ├▶ failed    refused for good (SMTP 5xx, HTTP 4xx)
///                                      ├▶ unknown   may have been delivered: never repeated by
///                                      │            itself; a person checks and resends
///                                      └▶ pending   transient: tried again after a backoff while
///                                                   attempts and the run's time last, else left
///                                                   for the next run
/// ```
package struct EffectStateMachine: Sendable {
    /// Attempts within one call for transient failures.
    package let attempts: Int
    /// The wait before the second attempt, doubled before each later one; a provider's
    /// Retry-After that asks for longer wins.
    package let backoff: Duration

    package init(attempts: Int, backoff: Duration = .milliseconds(500)) {
        self.attempts = max(1, attempts)
        self.backoff = backoff
    }

    package enum Step: Sendable, Equatable {
        case sent
        case failed(error: String)
        case unknown(error: String)
        /// Transient: recorded pending, and attempted again after `after`.
        case again(error: String, after: Duration)
        /// Transient, with no attempt left now (or the wait would pass the deadline): pending for
        /// the next run.
        case pending(error: String)

        /// What the ledger's row says after it.
        package var status: Effects.Status {
            switch self {
            case .sent: .sent
            case .failed: .failed
            case .unknown: .unknown
            case .again, .pending: .pending
            }
        }
    }

    /// The step after attempt `attempt` (1 for the first) ended with `failure` (nil: delivered).
    /// `timeLeft`: until the caller's deadline; nil for none.
    package func step(after attempt: Int, _ failure: DeliveryError?, timeLeft: Duration? = nil) -> Step {
        guard let failure else { return .sent }
        switch failure.disposition {
        case .permanent:
            return .failed(error: failure.message)
        case .unknown:
            return .unknown(error: "outcome unknown: \(failure.message); not repeated, to avoid a duplicate")
        case .transient:
            guard attempt < attempts else { return .pending(error: failure.message) }
            let doubled = backoff * (1 << min(attempt - 1, 30))
            let wait = max(doubled, failure.retryAfter ?? .zero)
            if let timeLeft, wait > timeLeft { return .pending(error: failure.message) }
            return .again(error: failure.message, after: wait)
        }
    }

    /// Writes `step` to effect `id`: the one place an attempt's end is recorded.
    package func record(_ step: Step, id: Int64, in effects: Effects) async throws {
        switch step {
        case .sent: try await effects.markSent(id)
        case .failed(let error): try await effects.markFailed(id, error: error)
        case .unknown(let error): try await effects.markUnknown(id, error: error)
        case .again(let error, _), .pending(let error): try await effects.markRetryable(id, error: error)
        }
    }
}
