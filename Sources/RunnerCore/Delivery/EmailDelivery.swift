import Foundation

/// Sends emails as effects: recorded before sending, leased for each attempt, marked after.
/// Without a mailer they are kept as drafts; in a dry run nothing is recorded or sent.
public struct EmailDelivery: Sendable {
    public enum Result: String, Sendable {
        case sent, drafted, failed, pending
        /// Recorded by an earlier run; nothing done now.
        case alreadyRecorded = "already_recorded"
        case dryRun = "dry_run"
    }

    public static let kind = "email"

    let context: AgentContext
    /// Attempts within one run for transient failures, with doubling backoff.
    var attempts = 3
    var backoff: Duration = .milliseconds(500)

    /// Opens after an email exhausts its retries on a transient failure: the provider is
    /// down, so the run's other emails are left pending without waiting on it again.
    private let circuit = Circuit()

    public init(context: AgentContext, attempts: Int = 3, backoff: Duration = .milliseconds(500)) {
        self.context = context
        self.attempts = attempts
        self.backoff = backoff
    }

    /// The key an email of `job` is recorded under: `job:key`, so each job finds its own.
    public static func recordedKey(_ key: String, job: String) -> String {
        job + ":" + key
    }

    /// Records and sends one email under `job:key`; an email already recorded under it is left alone.
    public func deliver(_ email: Email, key: String) async throws -> Result {
        if context.dryRun { return .dryRun }
        let (effect, isNew) = try await context.effects.record(
            kind: Self.kind, key: Self.recordedKey(key, job: context.job), runID: context.runID,
            target: email.to.joined(separator: ", "),
            payload: email.json)
        guard isNew else { return .alreadyRecorded }
        return try await attempt(effect.id, email)
    }

    /// Finishes this job's emails that a crashed or failed run left pending (never those that
    /// died mid-send). Keys of a job's emails start with `job:`.
    public func finishPending() async throws -> [Result] {
        if context.dryRun { return [] }
        var results: [Result] = []
        for effect in try await context.effects.pending(
            kind: Self.kind, keyPrefix: Self.recordedKey("", job: context.job))
        {
            guard let email = Email(json: effect.payload) else {
                try await context.effects.markFailed(effect.id, error: "the stored email cannot be read")
                results.append(.failed)
                continue
            }
            results.append(try await attempt(effect.id, email))
        }
        return results
    }

    /// Sends an email whose effect the caller recorded itself (in its own transaction).
    public func attempt(_ id: Int64, _ email: Email) async throws -> Result {
        let effects = context.effects
        guard let mailer = context.mailer else {
            try await effects.markDraft(id)
            return .drafted
        }
        if circuit.isOpen { return .pending }
        var delay = backoff
        for attempt in 1...max(1, attempts) {
            guard try await effects.lease(id, runID: context.runID, for: .seconds(300)) else { return .alreadyRecorded }
            let failure: DeliveryError?
            do {
                try await mailer.send(email, messageID: "effect-\(id)@runner")
                failure = nil
            } catch {
                failure = error
            }
            guard let error = failure else {
                try await effects.markSent(id)
                return .sent
            }
            context.logger.warning(
                "email not sent",
                metadata: [
                    "effect_id": "\(id)", "attempt": "\(attempt)", "transient": "\(error.transient)",
                    "error": "\(error.message)",
                ])
            guard error.transient else {
                try await effects.markFailed(id, error: error.message)
                return .failed
            }
            try await effects.markRetryable(id, error: error.message)
            if attempt < attempts {
                try await Task.sleep(for: delay)
                delay *= 2
            }
        }
        circuit.open()
        return .pending
    }
}

extension EmailDelivery {
    /// Adds emailed/drafted/failed counts; returns a failure message when an email failed or
    /// is still pending.
    public static func summarize(
        _ results: [EmailDelivery.Result], into outcome: inout [String: JSONValue], metrics: inout [Metric]
    ) -> String? {
        let sent = results.filter { $0 == .sent }.count
        let drafted = results.filter { $0 == .drafted }.count
        let failed = results.filter { $0 == .failed }.count
        let pending = results.filter { $0 == .pending }.count
        outcome["emailed"] = .number(Double(sent))
        outcome["drafted"] = .number(Double(drafted))
        if failed > 0 { outcome["email_failed"] = .number(Double(failed)) }
        if pending > 0 { outcome["email_pending"] = .number(Double(pending)) }
        metrics += [
            Metric("emails_sent", Double(sent)), Metric("emails_drafted", Double(drafted)),
            Metric("emails_failed", Double(failed + pending)),
        ]
        if failed + pending > 0 {
            return
                "\(failed + pending) email\(failed + pending == 1 ? "" : "s") not sent (\(failed) failed, \(pending) left pending for the next run)"
        }
        return nil
    }
}

/// A flag shared by the copies of one ``EmailDelivery``.
private final class Circuit: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var opened = false

    var isOpen: Bool { lock.withLock { opened } }
    func open() { lock.withLock { opened = true } }
}
