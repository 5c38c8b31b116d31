import Foundation
import HTTPClients
import JobTable
import Ledger
import Logging
import PostgresClient
import RunnerSupport

/// Tells people of a job's state changes (failed, recovered, missed, timed out, running long)
/// on its `notify:` channels, and Sentry of failed runs (`SENTRY_DSN`).
///
/// Each notification is an effect in the ledger, keyed by job, event, what it is about (a
/// slot, a failure streak, a run) and channel: however many replicas or retried runs see the
/// same change, one records it and sends it. A channel that is down leaves its notification
/// pending for the next run to send; a notification never fails a run, and no attempt waits
/// more than a few seconds.
public struct Notifier: Sendable {
    package let ledger: Ledger
    package let logger: Logger
    package let sentry: SentryDSN?
    package let webhookSecret: String?
    package let statusPage: String?
    package let mailer: Mailer?
    package let client: CurlClient
    /// When this process last attempted each notification: a pass over pending ones leaves those
    /// tried in the last minute (a channel that just failed is not hit again at once).
    private let attempted = Locked([Int64: ContinuousClock.Instant]())

    public static let kind = EffectKind("notification", recovery: .atMostOnce)
    /// Every notification's key starts with this (emails' too, so the outbox shows them).
    package static let scope = "notify"
    package static let timeout: Duration = .seconds(5)
    /// A notification not sent after this many attempts (a channel refusing with 429 or 5xx for
    /// good) is marked failed, so it never holds the pending queue.
    package static let maxAttempts = 10

    public init(ledger: Ledger, environment: [String: String], logger: Logger) {
        self.ledger = ledger
        self.logger = logger
        var sentry: SentryDSN?
        if let dsn = environment["SENTRY_DSN"], !dsn.isEmpty {
            do {
                sentry = try SentryDSN(parsing: dsn)
            } catch {
                logger.warning("no Sentry events: \(error)")
            }
        }
        self.sentry = sentry
        webhookSecret = environment["WEBHOOK_SECRET"].flatMap { $0.isEmpty ? nil : $0 }
        statusPage = environment["RUNNER_PUBLIC_URL"].flatMap { $0.isEmpty ? nil : $0 }
        mailer = try? MailerConfiguration.mailer(environment: environment)
        client = CurlClient()
    }

    /// Whether `job` has anyone to tell of anything.
    package func listens(_ job: Job) -> Bool { !job.notify.isEmpty || sentry != nil }

    // MARK: - Events

    /// After a slot's last attempt (no retry follows): `failed` for the first failed slot after
    /// a success (again every `repeat_after` while it keeps failing; `timed_out` instead for a
    /// channel that hears both when that first failure was a timeout), `recovered` for a success
    /// after failures, and a Sentry event for a failed or timed-out slot. Keys name the streak's
    /// first slot, which every process reads alike from the rows. Sends stop at `deadline`; what
    /// is left stays pending for the next run.
    public func afterRun(_ record: RunRecord, job: Job, now: Date) async {
        guard listens(job), record.origin == .schedule else { return }
        let deadline = ContinuousClock.now + Self.timeout
        do {
            let streak = try await ledger.streak(job: job.name, at: record.slot)
            var notification = Notification(
                job: job.name, event: .failed, slot: record.slot, runID: record.id, status: record.status.rawValue,
                attempt: record.attempt, durationMs: record.durationMs, error: record.error,
                outputTail: Notification.output(of: record.outcome), failureStreak: streak.before + 1,
                statusPage: statusPage, at: now
            ).masking(job.notify.compactMap(\.secretURL))
            if Self.isFailure(record.status) {
                let start = streak.start ?? record.slot
                let since = "since-\(Ledger.slotKey(for: start))"
                // Said once per streak, keyed by its first slot: every failure of the streak offers
                // it, so a first failure nobody reported (a process killed in its retry wait) is
                // reported by the next. A timeout that starts a streak is said as timed_out to
                // those who hear both.
                let event: NotifyEvent = streak.before == 0 && record.status == .timedOut ? .timedOut : .failed
                await send(notification, as: event, on: job, about: since, keyEvent: .failed, deadline: deadline)
                if streak.before > 0 {
                    let periods = Int(now.timeIntervalSince(start) / job.repeatAfter.timeInterval)
                    if periods >= 1 {
                        await send(
                            notification, as: .failed, on: job, about: "\(since)-repeat-\(periods)", deadline: deadline)
                    }
                }
                if sentry != nil { await sendSentry(notification, job: job, deadline: deadline) }
            } else if record.status == .succeeded, streak.before > 0 {
                notification.event = .recovered
                notification.failureStreak = streak.before
                notification.error = nil
                notification.outputTail = nil
                await send(
                    notification, as: .recovered, on: job, about: Ledger.slotKey(for: record.slot), deadline: deadline)
            }
        } catch {
            logger.warning(
                "cannot work out the job's notifications", metadata: ["job": "\(job.name)", "error": "\(error)"])
        }
    }

    /// A failure for notifications: a shutdown's `interrupted` is not the job's fault.
    package static func isFailure(_ status: RunStatus) -> Bool { [.failed, .timedOut, .abandoned].contains(status) }

    /// Records `missed`, once per slot, on the channels that want it: `slots` are the rows this
    /// process wrote (so among any number of processes, one records each). Nothing is sent
    /// here: the next pass over pending notifications sends them (``finishPending(jobs:)``),
    /// so a check made by `runner status`, or a run that is then killed, loses none.
    public func recordMissed(_ slots: [Ledger.WrittenSlot], jobs: [String: Job], now: Date) async {
        for slot in slots {
            guard let job = jobs[slot.job], !job.notify.isEmpty else { continue }
            let notification = Notification(
                job: job.name, event: .missed, slot: slot.slot, runID: slot.id, status: "missed",
                statusPage: statusPage, at: now)
            await send(notification, as: .missed, on: job, about: Ledger.slotKey(for: slot.slot), deadline: nil)
        }
    }

    /// `running_long`: a run still running past its job's `warn_after` (it is not stopped).
    public func runningLong(job: Job, runID: Int64, slot: Date, elapsed: Duration, now: Date) async {
        let notification = Notification(
            job: job.name, event: .runningLong, slot: slot, runID: runID, status: RunStatus.running.rawValue,
            durationMs: Int64(elapsed.timeInterval * 1000), statusPage: statusPage, at: now)
        await send(
            notification, as: .runningLong, on: job, about: "run-\(runID)", deadline: ContinuousClock.now + Self.timeout
        )
    }

    // MARK: - Sending

    /// The key of one notification on one channel: `notify:JOB|EVENT|ABOUT|CHANNEL`, the job
    /// named `NAMESPACE/JOB` outside the default namespace (a job name has no `/`), so two
    /// services' jobs of one name are told apart, and keys recorded before namespaces keep theirs.
    package func key(job: String, event: String, about: String, channel: String) -> String {
        "\(keysStart)\(job)|\(event)|\(about)|\(channel)"
    }

    /// What every notification key of this namespace starts with: `notify:`, then the namespace's prefix.
    private var keysStart: String { "\(Self.scope):\(Self.keyPrefix(namespace: ledger.namespace))" }

    /// What a namespace's notification keys put before the job's name.
    package static func keyPrefix(namespace: String) -> String {
        namespace == JobTable.defaultNamespace ? "" : "\(namespace)/"
    }

    /// Records the notification as `event` on each of the job's channels that wants it (a
    /// `failed` that was a timeout goes as `failed` to channels that do not hear `timed_out`),
    /// and sends those this call recorded, until `deadline` (nil: records only). A channel's
    /// earlier record, of any status, is left alone.
    package func send(
        _ original: Notification, as event: NotifyEvent, on job: Job, about: String, keyEvent: NotifyEvent? = nil,
        deadline: ContinuousClock.Instant?
    ) async {
        for channel in job.notify {
            var notification = original
            if channel.events.contains(event) {
                notification.event = event
            } else if event == .timedOut, channel.events.contains(.failed) {
                notification.event = .failed
            } else {
                continue
            }
            let key = self.key(
                job: notification.job, event: (keyEvent ?? notification.event).rawValue, about: about,
                channel: channel.label)
            do {
                if case .email(let recipients) = channel.target {
                    try await sendEmail(
                        notification, to: recipients, key: key, send: deadline.map { .now < $0 } ?? false)
                    continue
                }
                let (effect, isNew) = try await Effects(ledger: ledger).record(
                    kind: Self.kind.name, key: key, runID: notification.runID, target: channel.label,
                    payload: notification.stored)
                guard isNew else { continue }
                logger.info(
                    "notifying",
                    metadata: [
                        "job": "\(job.name)", "event": "\(notification.event.rawValue)", "channel": "\(channel.label)",
                    ])
                // Past the budget (or recording only): the next pass over pending ones sends it.
                guard let deadline, ContinuousClock.now < deadline else { continue }
                await attempt(effect.id, notification, channel: channel.target)
            } catch {
                logger.warning(
                    "cannot record a notification; it is not sent",
                    metadata: ["job": "\(job.name)", "channel": "\(channel.label)", "error": "\(error)"])
            }
        }
    }

    /// An email notification goes through the runner's email delivery: an effect of kind
    /// `email` (so `runner outbox` shows it), a draft without a provider.
    private func sendEmail(_ notification: Notification, to recipients: [EmailAddress], key: String, send: Bool)
        async throws
    {
        let email = notification.email(to: recipients)
        if send {
            let delivery = EmailDelivery(
                context: emailContext(runID: notification.runID), attempts: 1)
            // The delivery adds the scope; the key here already carries it.
            _ = try await delivery.deliver(email, key: String(key.dropFirst(Self.scope.count + 1)))
        } else {
            // Recorded now; the next pass over pending emails sends it (or keeps it as a draft).
            _ = try await Effects(ledger: ledger).record(
                kind: EmailDelivery.kind.name, key: key, runID: notification.runID, target: email.recipients,
                payload: email.json)
        }
    }

    private func emailContext(runID: Int64?) -> OutboxContext {
        OutboxContext(
            runID: runID ?? 0, effectsScope: Self.scope, effects: Effects(ledger: ledger), mailer: mailer, logger: logger,
            dryRun: false)
    }

    private func sendSentry(_ notification: Notification, job: Job, deadline: ContinuousClock.Instant) async {
        guard let runID = notification.runID else { return }
        let key = self.key(job: job.name, event: "sentry", about: "run-\(runID)", channel: "sentry")
        do {
            let (effect, isNew) = try await Effects(ledger: ledger).record(
                kind: Self.kind.name, key: key, runID: runID, target: "sentry", payload: notification.stored)
            if isNew, ContinuousClock.now < deadline { await attempt(effect.id, notification, channel: nil) }
        } catch {
            logger.warning("cannot record a Sentry event", metadata: ["job": "\(job.name)", "error": "\(error)"])
        }
    }

    /// One attempt of a recorded notification, leased so no other process attempts it at the
    /// same time. `channel` nil: Sentry.
    package func attempt(_ id: Int64, _ notification: Notification, channel: NotifyChannel.Target?) async {
        let effects = Effects(ledger: ledger)
        attempted.withLock { $0[id] = .now }
        let http: (any HTTPChannel)?
        switch channel {
        case .slack(let url): http = SlackChannel(url: url)
        case .webhook(let url):
            guard let webhookSecret else {
                // Never unsigned: it waits, pending, until WEBHOOK_SECRET is set (runner env says so).
                logger.error(
                    "webhook notification not sent: WEBHOOK_SECRET is not set (runner env lists what is missing)",
                    metadata: ["job": "\(notification.job)"])
                return
            }
            http = WebhookChannel(url: url, secret: webhookSecret)
        case .email: return
        case nil: http = sentry.map(SentryChannel.init(dsn:))
        }
        do {
            guard try await effects.lease(id, runID: notification.runID, for: .seconds(60)) else { return }
            guard let http else {
                try await effects.markFailed(id, error: "SENTRY_DSN is no longer set")
                return
            }
            var transfer = http.request(for: notification, at: Date())
            transfer.method = "POST"
            transfer.timeout = Self.timeout
            transfer.connectTimeout = .seconds(3)
            transfer.maxResponseBytes = 64 * 1024
            let result: Result<CurlTransfer.Response, CurlTransfer.Failure>
            do throws(CurlTransfer.Failure) {
                result = .success(try await client.perform(transfer))
            } catch {
                result = .failure(error)
            }
            let failure: DeliveryError?
            switch result {
            case .success(let response):
                switch response.status {
                case 200..<300: failure = nil
                case 429, 500...:
                    failure = DeliveryError(.transient, "HTTP \(response.status); tried again by the next run")
                default: failure = DeliveryError(.permanent, "refused: HTTP \(response.status)")
                }
            case .failure(let error):
                logger.warning(
                    "notification not sent", metadata: ["job": "\(notification.job)", "error": "\(error.message)"])
                failure =
                    error.requestSent
                    ? DeliveryError(.unknown, error.message)
                    : DeliveryError(.transient, "\(error.message); tried again by the next run")
            }
            // One attempt per call: what is still pending waits for the next run's pass.
            let machine = EffectStateMachine(attempts: 1)
            try await machine.record(machine.step(after: 1, failure), id: id, in: effects)
        } catch {
            logger.warning("cannot record a notification's outcome", metadata: ["error": "\(error)"])
        }
    }

    /// Sends what earlier runs left pending (a channel that was down), for these jobs' channels
    /// as the table now defines them; a channel since removed is marked failed.
    ///
    /// A notification of a job this table lacks waits for a table that has it (a rolling deploy
    /// runs two versions side by side) for at most ``Ledger/removalGrace``: after that, or an hour
    /// after the job was marked removed, it is settled failed, with why, since only a table knows
    /// where its channels are. Waiting ones never hold up the others: the pass pages on past them.
    public func finishPending(jobs: [Job]) async {
        // Nobody to tell: no statement spent looking.
        guard sentry != nil || jobs.contains(where: { !$0.notify.isEmpty }) else { return }
        let byName = Dictionary(jobs.map { ($0.name, $0) }) { first, _ in first }
        // Bounded, so a channel still down costs a run's end at most this long.
        let deadline = ContinuousClock.now + .seconds(10)
        do {
            let effects = Effects(ledger: ledger)
            let prefix = keysStart
            func jobName(_ effect: Effects.Effect) -> String {
                String(effect.key.dropFirst(prefix.count).prefix { $0 != "|" })
            }
            var after: Int64 = 0
            for _ in 0..<10 {
                let pending = try await effects.pending(kind: Self.kind, keyPrefix: prefix, limit: 20, after: after)
                guard let last = pending.last, ContinuousClock.now < deadline else { break }
                after = last.id
                let absent = Set(pending.map(jobName).filter { byName[$0] == nil })
                let removals = absent.isEmpty ? [:] : try await ledger.removals(jobs: absent.sorted())
                for effect in pending {
                    guard ContinuousClock.now < deadline else { break }
                    try await finish(effect, jobs: byName, removals: removals, jobName: jobName(effect), effects: effects)
                }
            }
            // Emails have a pass of their own, whatever the other channels took.
            _ = try await EmailDelivery(context: emailContext(runID: nil), attempts: 1).finishPending()
        } catch {
            logger.warning("cannot finish pending notifications", metadata: ["error": "\(error)"])
        }
    }

    /// One pending notification: sent, settled, or left waiting for a table that has its job.
    private func finish(
        _ effect: Effects.Effect, jobs byName: [String: Job], removals: [String: Date?], jobName name: String,
        effects: Effects
    ) async throws {
        let recently = attempted.withLock {
            $0[effect.id].map { ContinuousClock.now - $0 < .seconds(60) } ?? false
        }
        // Never a row that blocks the others for good: each is sent, or settled.
        guard effect.attempts < Self.maxAttempts else {
            try await effects.markFailed(effect.id, error: "not sent after \(Self.maxAttempts) attempts")
            return
        }
        guard !recently else { return }
        let parts = effect.key.dropFirst(keysStart.count).split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 4 else {
            try await effects.markFailed(effect.id, error: "the notification's key cannot be read")
            return
        }
        guard let job = byName[name] else {
            let grace = Ledger.removalGrace.timeInterval
            switch removals[name] {
            case .some(.none) where Date().timeIntervalSince(effect.createdAt) < grace:
                return  // Another table of the namespace has the job (a rolling deploy): it sends it.
            case .some(.some(let removedAt)) where Date().timeIntervalSince(removedAt) < grace:
                return  // Removed moments ago: a rolling deploy may bring it back.
            case .some(.some(let removedAt)):
                try await effects.markFailed(
                    effect.id,
                    error: "job \(name) was removed from the job table of namespace \(ledger.namespace) "
                        + "at \(Ledger.slotKey(for: removedAt)); its channels are no longer known")
            case .some(.none):
                try await effects.markFailed(
                    effect.id,
                    error: "job \(name) is not in the job table of namespace \(ledger.namespace) that has run since "
                        + "it was recorded, an hour ago; its channels are not known here")
            case .none:
                try await effects.markFailed(
                    effect.id, error: "job \(name) is in no job table of namespace \(ledger.namespace)")
            }
            return
        }
        guard let notification = Notification(stored: effect.payload) else {
            try await effects.markFailed(effect.id, error: "the stored notification cannot be read")
            return
        }
        if parts[3] == "sentry" {
            await attempt(effect.id, notification, channel: nil)
        } else if let channel = job.notify.first(where: { $0.label == parts[3] }) {
            await attempt(effect.id, notification, channel: channel.target)
        } else {
            try await effects.markFailed(effect.id, error: "the channel is no longer in the job's notify:")
        }
    }
}

extension Ledger {
    /// Per job: its latest notification (any channel), when and which event.
    public func lastNotifications(jobs: [String]) async throws -> [String: (at: Date, event: String)] {
        try await latestKeyedEffects(
            jobs: jobs, kinds: [Notifier.kind.name, EmailDelivery.kind.name],
            keyPrefix: "\(Notifier.scope):\(Notifier.keyPrefix(namespace: namespace))")
    }
}
