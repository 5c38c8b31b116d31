import Engine
import Foundation
import JobTable
import Ledger
import Logging
import Outbox
import PostgresClient
import RunnerSupport

/// ZOARK's task monitor: ACTIVE tasks whose `lastUpdated` is older than `stuck_after` (48 h).
/// Alerts once per stuck episode (task id + lastUpdated), optionally again every
/// `realert_after`, in one digest email per run to `alert_to`; without a recipient, a draft.
public struct TaskMonitor: ZOARKAgent {
    public static let name: AgentName = "task-monitor"
    package static let activity = AgentLog.Action.taskStuckAlert
    public static let alertKind = EffectKind("task-monitor.alert", recovery: .followsGroup)

    package struct StuckTask: Sendable, Equatable {
        package let id: String
        package let title: String
        package let project: String
        package let status: String
        package let lastUpdated: String
        package let daysStuck: Int
    }

    /// `with:` keys: `stuck_after` (48h), `realert_after` (never), `alert_to` (none: drafts).
    public struct Options: AgentOptionSet {
        public var stuckAfter: Duration = .seconds(48 * 3600)
        public var realertAfter: Duration?
        public var alertTo: [EmailAddress] = []

        public init() {}

        public init(
            stuckAfter: Duration = .seconds(48 * 3600), realertAfter: Duration? = nil, alertTo: [EmailAddress] = []
        ) {
            self.stuckAfter = stuckAfter
            self.realertAfter = realertAfter
            self.alertTo = alertTo
        }

        public static let fields: [OptionField<Self>] = [
            .duration("stuck_after", \.stuckAfter), .duration("realert_after", \.realertAfter),
            .emailAddresses("alert_to", \.alertTo),
        ]
    }

    public let options: Options

    public init(options: Options = Options()) {
        self.options = options
    }

    /// Stuck tasks read and claimed at a time: memory holds one page and the digest's list.
    package static let pageSize = 1000

    public func run(_ context: AgentContext) async throws -> AgentReport {
        let (stuckAfter, realertAfter, recipients) = (options.stuckAfter, options.realertAfter, options.alertTo)
        let delivery = EmailDelivery(context: recipients.isEmpty ? context.outbox.withoutMailer() : context.outbox)
        let retried = try await delivery.finishPending()

        let clock = ContinuousClock()
        let readStart = clock.now
        var firstPage: Duration?
        var stuck = 0
        var bad = BadRows()
        var newly = 0
        // The oldest newly stuck tasks, which the digest lists in full.
        var listed: [StuckTask] = []
        let query: [PostgresValue] = [.timestamp(context.now), .interval(stuckAfter)]
        let target = recipients.map(\.address).joined(separator: ", ")
        let job = context.job
        var digest: (id: Int64, email: Email)?
        if context.dryRun {
            try await context.forEachPage(Self.stuckQuery, query, size: Self.pageSize) { rows in
                if firstPage == nil { firstPage = clock.now - readStart }
                stuck += Self.tasks(rows, bad: &bad, logger: context.logger).count
            }
        } else {
            // The alerts and their digest are recorded in one transaction: a crash cannot leave an
            // alert recorded (so never alerted again) without the email that carries it. An alert
            // whose digest failed is claimed again, so a failed digest leaves its episodes for the
            // next run.
            var email: Email?
            let id = try await context.effects.recordGroup(
                members: Self.alertKind.name,
                leader: (
                    EmailDelivery.kind.name,
                    EmailDelivery.recordedKey("digest:run-\(context.runID)", scope: context.effectsScope)
                ),
                target: target, runID: context.runID,
                lockTimeout: context.deadline.map { $0 - .now }
            ) { claim in
                try await context.forEachPage(Self.stuckQuery, query, size: Self.pageSize) { rows in
                    if firstPage == nil { firstPage = clock.now - readStart }
                    let tasks = Self.tasks(rows, bad: &bad, logger: context.logger)
                    stuck += tasks.count
                    let keys = tasks.map { Self.episodeKey($0, realertAfter: realertAfter, context: context) }
                    let claimed = try await claim(keys)
                    for (task, key) in zip(tasks, keys) where claimed.contains(key) {
                        newly += 1
                        if listed.count < Self.digestLimit { listed.append(task) }
                    }
                }
                guard newly > 0 else { return nil }
                let digest = Self.digest(listed, total: newly, to: recipients, stuckAfter: stuckAfter, job: job)
                email = digest
                return digest.payloadText
            }
            if let id, let email { digest = (id, email) }
        }
        var report = ReportBuilder()
        report.count("stuck", stuck)
        report.phase("query_ms", firstPage ?? (clock.now - readStart))
        report.phase("record_ms", clock.now - readStart)
        bad.report(into: &report)
        if context.dryRun {
            report.note("would_alert", .number(Double(stuck)))
            return report.report
        }
        var results = retried
        var alerted = 0
        if let digest {
            let result = try await delivery.attempt(digest.id, digest.email)
            results.append(result)
            // Sent or drafted: the episodes were told. Failed: they are claimed again next run.
            // Pending or unknown: they follow their digest (finished, or kept for a person).
            let status: Effects.Status? =
                switch result {
                case .sent: .sent
                case .drafted: .draft
                case .failed, .invalidRecipient: .failed
                default: nil
                }
            if let status {
                try await context.effects.settleGroup(members: Self.alertKind.name, leaderID: digest.id, as: status)
            }
            if result == .sent || result == .drafted { alerted = newly }
        }
        report.count("newly_stuck", alerted)
        report.failure = EmailDelivery.summarize(results, into: &report)
        return report.report
    }

    public func preview(_ context: AgentContext, user: String?, includeRecorded: Bool) async throws -> [Email] {
        let (stuckAfter, realertAfter, recipients) = (options.stuckAfter, options.realertAfter, options.alertTo)
        let limit = includeRecorded ? Int.max : Self.digestLimit
        var listed: [StuckTask] = []
        var total = 0
        try await context.forEachPage(
            Self.stuckQuery, [.timestamp(context.now), .interval(stuckAfter)], size: Self.pageSize
        ) { rows in
            var bad = BadRows()
            let stuck = Self.tasks(rows, bad: &bad, logger: context.logger)
            let keys = stuck.map { Self.episodeKey($0, realertAfter: realertAfter, context: context) }
            let recorded =
                includeRecorded ? [] : try await context.effects.recordedKeys(kind: Self.alertKind.name, keys: keys)
            for (task, key) in zip(stuck, keys) where !recorded.contains(key) {
                total += 1
                if listed.count < limit { listed.append(task) }
            }
        }
        return total == 0
            ? [] : [Self.digest(listed, total: total, to: recipients, stuckAfter: stuckAfter, job: context.job)]
    }

    /// The main query, `$1` now and `$2` the threshold (the benchmark runs it alone too). A
    /// `-infinity` "lastUpdated" is older than any threshold but has no day count (NULL): that
    /// row is reported bad.
    public static let stuckQuery = """
        SELECT t."id", t."title", p."name" AS project, t."status"::text AS status,
               CASE WHEN isfinite(t."lastUpdated")
                    THEN to_char(t."lastUpdated", 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END AS last_updated,
               CASE WHEN isfinite(t."lastUpdated") THEN
                   floor(extract(epoch FROM ($1::timestamptz AT TIME ZONE 'UTC') - t."lastUpdated") / 86400)::int
               END AS days_stuck
        FROM "Task" t
        JOIN "Project" p ON p."id" = t."projectId"
        WHERE t."status" = 'ACTIVE'
          AND t."lastUpdated" < ($1::timestamptz AT TIME ZONE 'UTC') - $2::interval
        ORDER BY t."lastUpdated", t."id"
        """

    /// A page's stuck tasks; a row without a finite "lastUpdated" goes to `bad`.
    package static func tasks(_ rows: PostgresRows, bad: inout BadRows, logger: Logger) -> [StuckTask] {
        var tasks: [StuckTask] = []
        for row in rows {
            let id = (try? row.string("id", default: "")) ?? ""
            do {
                guard let days = try row.int("days_stuck"), let lastUpdated = try row.string("last_updated") else {
                    bad.add(id: id, reason: "\"lastUpdated\" is not a finite timestamp", logger: logger)
                    continue
                }
                tasks.append(
                    StuckTask(
                        id: id, title: try row.string("title", default: ""),
                        project: try row.string("project", default: ""), status: try row.string("status", default: ""),
                        lastUpdated: lastUpdated, daysStuck: days))
            } catch {
                bad.add(id: id, reason: "\(error)", logger: logger)
            }
        }
        return tasks
    }

    /// One stuck episode of a task; with `realert_after`, each further period is a new one.
    package static func episodeKey(_ task: StuckTask, realertAfter: Duration?, context: AgentContext) -> String {
        var key = "\(context.effectsScope):\(task.id)@\(task.lastUpdated)"
        if let realertAfter, let last = InstantFormat.parse(task.lastUpdated) {
            let period = max(1, realertAfter.components.seconds)
            key += "#\(Int64(context.now.timeIntervalSince(last)) / period)"
        }
        return key
    }

    /// How many tasks a digest lists in full (the oldest); the rest are counted, with the
    /// command that lists them all. A backlog of thousands stays an email a server accepts.
    package static let digestLimit = 200

    /// The digest of `total` newly stuck tasks, listing `tasks` (the oldest) in full and
    /// counting the rest.
    package static func digest(
        _ tasks: [StuckTask], total: Int, to recipients: [EmailAddress], stuckAfter: Duration, job: String
    ) -> Email {
        let threshold = DurationParser.format(stuckAfter)
        let subject =
            "[ZOARK] \(total) task\(total == 1 ? "" : "s") stuck (no update for \(threshold) or more)"
        var text = "These ACTIVE tasks have had no update for \(threshold) or more:\n\n"
        var rows = ""
        for task in tasks {
            let days = "\(task.daysStuck) day\(task.daysStuck == 1 ? "" : "s")"
            text +=
                "- \(task.title) (project \(task.project), \(task.status)): stuck \(days), last updated \(task.lastUpdated)\n"
            rows +=
                "<tr><td>\(htmlEscape(task.title))</td><td>\(htmlEscape(task.project))</td>"
                + "<td>\(htmlEscape(task.status))</td><td>\(days)</td><td>\(htmlEscape(task.lastUpdated))</td></tr>\n"
        }
        var more = ""
        if total > tasks.count {
            let line =
                "…and \(total - tasks.count) more stuck task\(total - tasks.count == 1 ? "" : "s"), not listed here. "
                + "List them all with: runner preview \(job) --all"
            text += "\n\(line)\n"
            more = "<p>\(htmlEscape(line))</p>\n"
        }
        let html = """
            <html><body>
            <p>These ACTIVE tasks have had no update for \(htmlEscape(threshold)) or more:</p>
            <table border="1" cellpadding="4" cellspacing="0">
            <tr><th>Task</th><th>Project</th><th>Status</th><th>Days stuck</th><th>Last updated (UTC)</th></tr>
            \(rows)</table>
            \(more)</body></html>
            """
        return Email(to: recipients, subject: subject, text: text, html: html)
    }
}
