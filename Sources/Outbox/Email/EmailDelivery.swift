import EmbeddedPostgres
import Foundation
import JobTable
import Ledger
import RunnerSupport

/// Sends emails as effects: recorded before sending, leased for each attempt, marked after.
/// Without a mailer they are kept as drafts; in a dry run nothing is recorded or sent.
public struct EmailDelivery: Sendable {
    public enum Result: String, Sendable {
        case sent, drafted, failed, pending
        /// Maybe delivered (the request had left when the attempt broke off): not retried.
        case unknown
        /// The recipient from the data is not one email address: recorded failed, nothing sent.
        case invalidRecipient = "invalid_recipient"
        /// Recorded by an earlier run; nothing done now.
        case alreadyRecorded = "already_recorded"
        case dryRun = "dry_run"
    }

    public static let kind = EffectKind("email", recovery: .atMostOnce)

    package let context: OutboxContext
    /// Attempts within one run for transient failures, with doubling backoff.
    package var attempts = 3
    package var backoff: Duration = .milliseconds(500)

    /// Opens after an email exhausts its retries on a transient failure: the provider is
    /// down, so the run's other emails are left pending without waiting on it again.
    private let circuitOpen = Locked(false)
    /// The effects this delivery attempted: a batch does not try again what `finishPending` tried.
    private let attempted = Locked(Set<Int64>())
    private let ledgerID = LedgerIDCache()

    public init(context: OutboxContext, attempts: Int = 3, backoff: Duration = .milliseconds(500)) {
        self.context = context
        self.attempts = attempts
        self.backoff = backoff
    }

    /// The key an email is recorded under: `scope:key` (``OutboxContext/effectsScope``).
    public static func recordedKey(_ key: String, scope: String) -> String {
        scope + ":" + key
    }

    /// Records and sends one email under `scope:key`; an email already recorded under it is left alone.
    public func deliver(_ email: Email, key: String) async throws -> Result {
        if context.dryRun { return .dryRun }
        let (effect, isNew) = try await context.effects.record(
            kind: Self.kind.name, key: Self.recordedKey(key, scope: context.effectsScope), runID: context.runID,
            target: email.recipients, payload: email.json)
        guard isNew else { return .alreadyRecorded }
        return try await attempt(effect.id, email)
    }

    /// Records, once, that the email under `key` cannot go out: its recipient from the data
    /// is not one address. Its key names the bad value, so once the data is mended the email
    /// goes out under `key` as usual.
    public func recordInvalid(_ invalid: EmailAddress.Invalid, key: String) async throws -> Result {
        if context.dryRun { return .dryRun }
        context.logger.warning(
            "email not sent: invalid recipient", metadata: ["key": "\(key)", "recipient": "\(invalid.value)"])
        let recorded = try await context.effects.recordFailed(
            kind: Self.kind.name, key: Self.invalidKey(Self.recordedKey(key, scope: context.effectsScope), invalid),
            runID: context.runID, target: invalid.value, error: invalid.description)
        return recorded ? .invalidRecipient : .alreadyRecorded
    }

    /// The key of a recorded invalid recipient: the email's key and a hash of the bad value.
    package static func invalidKey(_ key: String, _ invalid: EmailAddress.Invalid) -> String {
        key + "!invalid:" + EmbeddedPostgres.shortHash(invalid.value)
    }

    /// Finishes this scope's emails that a crashed or failed run left pending (never those that
    /// died mid-send). Keys of a scope's emails start with `scope:`.
    public func finishPending() async throws -> [Result] {
        if context.dryRun { return [] }
        var results: [Result] = []
        for effect in try await context.effects.pending(
            kind: Self.kind, keyPrefix: Self.recordedKey("", scope: context.effectsScope))
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

    /// What became of one item of a batch.
    public enum Delivered: Sendable, Equatable {
        case sentNow
        /// Sent by an earlier run, at this time.
        case sentBefore(Date?)
        /// Drafted, failed, unknown, left pending, or recorded before in one of those states.
        case notSent
    }

    /// What a batch did: per item, in order; the results of what this call recorded or tried;
    /// and how many pending emails a stopping run left for the next.
    public struct Batch: Sendable {
        public var items: [Delivered] = []
        public var results: [Result] = []
        public var notAttempted = 0
        /// How many emails were rendered: those not recorded before, or still pending.
        public var rendered = 0
    }

    /// Records and sends one email per item under `key(item)`, asking the ledger first: only
    /// the items with no email recorded yet, or one still pending, are handed to `render`
    /// (which returns their emails in their order). Then one statement records the new ones,
    /// and the pending ones are sent as many at a time as the mailer has connections.
    package func deliver<Item: Sendable>(
        _ items: [Item], key: (Item) -> String, phases: inout PhaseTimer,
        render: ([Item]) async throws -> [Email]
    ) async throws -> Batch {
        var batch = Batch(items: Array(repeating: .notSent, count: items.count))
        if context.dryRun { return batch }
        let keys = items.map { Self.recordedKey(key($0), scope: context.effectsScope) }
        let earlier = try await phases.time("lookup_ms") { try await context.effects.recorded(Self.kind.name, keys: keys) }
        let unsent = items.indices.filter { index in
            guard let effect = earlier[keys[index]] else { return true }
            return effect.status == .pending && !attempted.withLock { $0.contains(effect.id) }
        }
        let emails = try await phases.time("render_ms") { try await render(unsent.map { items[$0] }) }
        batch.rendered = emails.count
        let fresh = zip(unsent, emails).filter { earlier[keys[$0.0]] == nil }
        let recorded = try await phases.time("record_ms") {
            try await context.effects.record(
                Self.kind.name,
                fresh.map { Effects.Entry(key: keys[$0.0], target: $0.1.recipients, payload: $0.1.payloadText) },
                runID: context.runID, as: context.mailer == nil ? .draft : .pending
            ).merging(earlier) { new, _ in new }
        }
        var sends: [(index: Int, id: Int64, email: Email)] = []
        for (position, index) in unsent.enumerated() {
            guard let effect = recorded[keys[index]] else { continue }
            switch effect.status {
            case .pending: sends.append((index, effect.id, emails[position]))
            case .draft: if effect.isNew { batch.results.append(.drafted) }
            case .failed, .unknown: if effect.isNew { batch.results.append(.failed) }
            case .sent: break
            }
        }
        for (index, key) in keys.enumerated() {
            if let effect = earlier[key], effect.status == .sent { batch.items[index] = .sentBefore(effect.doneAt) }
        }
        // A stopping run starts no further send; those left stay pending for the next run.
        if Task.isCancelled {
            batch.notAttempted = sends.count
            return batch
        }
        let sent = try await phases.time("send_ms") { try await attempt(all: sends.map { ($0.id, $0.email) }) }
        batch.results += sent
        for (send, result) in zip(sends, sent) where result == .sent { batch.items[send.index] = .sentNow }
        return batch
    }

    /// Sends recorded emails, as many at a time as the mailer has connections; the results
    /// are in the order given.
    public func attempt(all emails: [(id: Int64, email: Email)]) async throws -> [Result] {
        let width = min(emails.count, max(1, context.mailer?.maxConnections ?? 1))
        guard width > 1 else {
            var results: [Result] = []
            for (id, email) in emails { results.append(try await attempt(id, email)) }
            return results
        }
        // A sender whose ledger write fails must not cancel the others mid-transfer (a send cut
        // off after its content left is of unknown outcome): no new send starts, those under way
        // finish and are recorded, then the error is thrown.
        // The first error of the concurrent senders.
        let failure = Locked<(any Error)?>(nil)
        let results = await withTaskGroup(of: (index: Int, result: Result?).self) { group in
            var results = [Result](repeating: .pending, count: emails.count)
            var started = 0
            var running = 0
            while true {
                while failure.withLock({ $0 == nil }), started < emails.count, running < width {
                    let index = started
                    let (id, email) = (emails[index].id, emails[index].email)
                    group.addTask {
                        do {
                            return (index, try await attempt(id, email))
                        } catch {
                            failure.withLock { $0 = $0 ?? error }
                            return (index, nil)
                        }
                    }
                    started += 1
                    running += 1
                }
                guard let finished = await group.next() else { break }
                running -= 1
                if let result = finished.result, results.indices.contains(finished.index) {
                    results[finished.index] = result
                }
            }
            return results
        }
        if let error = failure.withLock({ $0 }) { throw error }
        return results
    }

    /// Sends an email whose effect the caller recorded itself (in its own transaction).
    public func attempt(_ id: Int64, _ email: Email) async throws -> Result {
        let effects = context.effects
        guard let mailer = context.mailer else {
            try await effects.markDraft(id)
            return .drafted
        }
        if circuitOpen.withLock({ $0 }) { return .pending }
        attempted.withLock { _ = $0.insert(id) }
        // Read before any lease: a lease taken and then abandoned on this lookup's failure
        // would make an unsent email look as if it had died mid-send.
        let messageID = "effect-\(id).\(try await ledgerID.get(effects))@\(mailer.from.domain)"
        let machine = EffectStateMachine(attempts: attempts, backoff: backoff)
        sending: for attempt in 1...machine.attempts {
            // A stopping run starts no new send: the email stays pending for the next run.
            if Task.isCancelled { return .pending }
            // The wait for its turn comes before the lease, so the lease cannot run out in it.
            do {
                try await mailer.ready()
            } catch {
                return .pending
            }
            guard try await effects.lease(id, runID: context.runID, for: .seconds(300)) else { return .alreadyRecorded }
            let failure: DeliveryError?
            do {
                try await mailer.send(email, messageID: messageID)
                failure = nil
            } catch {
                failure = error
            }
            if let error = failure {
                context.logger.warning(
                    "email not sent",
                    metadata: [
                        "effect_id": "\(id)", "attempt": "\(attempt)", "disposition": "\(error.disposition.rawValue)",
                        "error": "\(error.message)",
                    ])
            }
            // At least as long as the provider asked; never past the run's deadline.
            let step = machine.step(after: attempt, failure, timeLeft: context.deadline.map { $0 - .now })
            try await machine.record(step, id: id, in: effects)
            switch step {
            case .sent: return .sent
            case .failed: return .failed
            case .unknown: return .unknown
            case .pending: break sending
            case .again(_, let wait):
                do {
                    try await Task.sleep(for: wait)
                } catch {
                    return .pending
                }
            }
        }
        circuitOpen.withLock { $0 = true }
        return .pending
    }
}

extension EmailDelivery {
    /// Adds emailed/drafted/failed counts; returns a failure message when an email failed or
    /// is still pending.
    public static func summarize(_ results: [EmailDelivery.Result], into report: inout ReportBuilder) -> String? {
        let sent = results.filter { $0 == .sent }.count
        let drafted = results.filter { $0 == .drafted }.count
        let failed = results.filter { $0 == .failed }.count
        let pending = results.filter { $0 == .pending }.count
        let unknown = results.filter { $0 == .unknown }.count
        let invalid = results.filter { $0 == .invalidRecipient }.count
        // The outcome names what a person reads; the metrics keep their documented names.
        report.note("emailed", .number(Double(sent)))
        report.note("drafted", .number(Double(drafted)))
        report.note("email_failed", count: failed)
        report.note("email_pending", count: pending)
        report.note("email_unknown", count: unknown)
        report.note("invalid_recipients", count: invalid)
        report.metric("emails_sent", Double(sent))
        report.metric("emails_drafted", Double(drafted))
        report.metric("emails_failed", Double(failed + pending + invalid))
        report.metric("emails_unknown", Double(unknown))
        var problems: [String] = []
        if failed > 0 { problems.append("\(failed) failed") }
        if invalid > 0 { problems.append("\(invalid) to an invalid recipient") }
        if pending > 0 { problems.append("\(pending) left pending for the next run") }
        if unknown > 0 { problems.append("\(unknown) of unknown outcome (see runner outbox --status unknown)") }
        let total = failed + pending + unknown + invalid
        guard total > 0 else { return nil }
        return "\(total) email\(total == 1 ? "" : "s") not sent (\(problems.joined(separator: ", ")))"
    }
}

/// The ledger's id, read once per delivery and shared by its copies.
private struct LedgerIDCache: Sendable {
    private let id = Locked<String?>(nil)

    package func get(_ effects: Effects) async throws -> String {
        if let id = id.withLock({ $0 }) { return id }
        let fetched = try await effects.ledgerID()
        id.withLock { $0 = fetched }
        return fetched
    }
}
