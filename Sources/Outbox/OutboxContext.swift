import Foundation
import Ledger
import Logging

/// What the outbox needs of whoever sends: the run its effects belong to, the scope their keys
/// start with, the ledger's effects, the mailer (nil: drafts), and the run's deadline. An
/// agent's run and the notifier each give one.
public struct OutboxContext: Sendable {
    /// The run the effects are recorded for; 0 for none (the notifier's pass over pending mail).
    public let runID: Int64
    /// What the effect keys start with (`scope:key`).
    public let effectsScope: String
    public let effects: Effects
    /// Nil when no email provider is configured: emails are kept as drafts.
    public let mailer: Mailer?
    public let logger: Logger
    /// Nothing is recorded or sent.
    public let dryRun: Bool
    /// Waits (a provider's retry-after) never reach past it.
    public let deadline: ContinuousClock.Instant?

    public init(
        runID: Int64, effectsScope: String, effects: Effects, mailer: Mailer?, logger: Logger, dryRun: Bool,
        deadline: ContinuousClock.Instant? = nil
    ) {
        self.runID = runID
        self.effectsScope = effectsScope
        self.effects = effects
        self.mailer = mailer
        self.logger = logger
        self.dryRun = dryRun
        self.deadline = deadline
    }

    /// The same context with no mailer: every email becomes a draft.
    public func withoutMailer() -> OutboxContext {
        OutboxContext(
            runID: runID, effectsScope: effectsScope, effects: effects, mailer: nil, logger: logger, dryRun: dryRun,
            deadline: deadline)
    }
}
