import Foundation

/// ZOARK's task monitor: ACTIVE tasks whose `lastUpdated` is older than `stuck_after` (48 h).
/// Alerts once per stuck episode (task id + lastUpdated), optionally again every
/// `realert_after`, in one digest email per run to `alert_to`; without a recipient, a draft.
public struct TaskMonitor: Agent {
    public static let alertKind = "task-monitor.alert"

    struct StuckTask: Sendable, Equatable {
        let id: String
        let title: String
        let project: String
        let status: String
        let lastUpdated: String
        let daysStuck: Int
    }

    public init() {}

    public func run(_ context: AgentContext) async throws -> AgentReport {
        let (stuckAfter, realertAfter, recipients) = try Self.settings(context.options)
        let delivery = EmailDelivery(context: recipients.isEmpty ? context.withoutMailer() : context)
        let retried = try await delivery.finishPending()

        let clock = ContinuousClock()
        let queryStart = clock.now
        let (stuck, bad) = try await Self.findStuck(context, stuckAfter: stuckAfter)
        var outcome: [String: JSONValue] = ["stuck": .number(Double(stuck.count))]
        var metrics = [
            Metric("stuck", Double(stuck.count)), Metric("query_ms", (clock.now - queryStart).milliseconds, unit: "ms"),
        ]
        bad.report(into: &outcome, metrics: &metrics)
        let episodes = stuck.map { task in (task, Self.episodeKey(task, realertAfter: realertAfter, context: context)) }

        if context.dryRun {
            outcome["would_alert"] = .number(Double(stuck.count))
            return AgentReport(outcome: outcome, metrics: metrics)
        }
        // The alerts and their digest are recorded together: a crash cannot leave an alert
        // recorded (so never alerted again) without the email that carries it. An alert whose
        // digest failed is claimed again, so a failed digest leaves its episodes for the next run.
        let job = context.job
        let runID = context.runID
        let target = recipients.map(\.address).joined(separator: ", ")
        let recordStart = clock.now
        let recorded: (newly: [StuckTask], digest: (id: Int64, email: Email)?) = try await context.effects.connection
            .transaction { connection in
                let rows = try connection.query(
                    """
                    INSERT INTO runner.effects AS e (kind, key, run_id, status, target, payload)
                    SELECT $1, k, $2::bigint, 'pending', $3, '{}'::jsonb FROM unnest($4::text[]) AS k
                    ON CONFLICT (kind, key) DO UPDATE
                        SET run_id = excluded.run_id, status = 'pending', target = excluded.target, payload = '{}',
                            done_at = NULL, attempts = 0, last_error = NULL
                        WHERE e.status = 'failed'
                           OR (e.status = 'pending' AND EXISTS (
                                SELECT 1 FROM runner.effects d
                                WHERE d.id = (e.payload->>'digest_effect_id')::bigint AND d.status = 'failed'))
                    RETURNING key
                    """,
                    [PostgresValue(Self.alertKind), .int64(runID), PostgresValue(target), .array(episodes.map(\.1))])
                let newKeys = Set(try rows.compactMap { try $0.string("key") })
                let newly = episodes.filter { newKeys.contains($0.1) }.map(\.0)
                guard !newly.isEmpty else { return (newly, nil) }
                let email = Self.digest(newly, to: recipients, stuckAfter: stuckAfter, job: job)
                let digest = try connection.query(
                    """
                    INSERT INTO runner.effects (kind, key, run_id, status, target, payload)
                    VALUES ($1, $2, $3::bigint, 'pending', $4, $5::jsonb)
                    RETURNING id
                    """,
                    [
                        PostgresValue(EmailDelivery.kind),
                        PostgresValue(EmailDelivery.recordedKey("digest:run-\(runID)", job: job)), .int64(runID),
                        PostgresValue(target), PostgresValue(email.payloadText),
                    ])
                try connection.query(
                    "UPDATE runner.effects SET payload = jsonb_build_object('digest_effect_id', $1::bigint) "
                        + "WHERE kind = $2 AND key = ANY($3::text[])",
                    [.int64(try digest.first?.int64("id")), PostgresValue(Self.alertKind), .array(Array(newKeys))])
                return (newly, (try digest.first?.int64("id") ?? 0, email))
            }

        metrics.append(Metric("record_ms", (clock.now - recordStart).milliseconds, unit: "ms"))
        var results = retried
        var alerted = 0
        if let digest = recorded.digest {
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
                try await context.effects.connection.query(
                    """
                    UPDATE runner.effects SET status = $1, done_at = now()
                    WHERE kind = $2 AND payload->>'digest_effect_id' = $3
                    """,
                    [PostgresValue(status.rawValue), PostgresValue(Self.alertKind), PostgresValue(String(digest.id))])
            }
            if result == .sent || result == .drafted { alerted = recorded.newly.count }
        }
        outcome["newly_stuck"] = .number(Double(alerted))
        metrics.append(Metric("newly_stuck", Double(alerted)))
        let report = EmailDelivery.summarize(results, into: &outcome, metrics: &metrics)
        try await AgentLog.write(.taskStuckAlert, outcome: outcome, failed: report != nil, on: context.database)
        return AgentReport(outcome: outcome, metrics: metrics, failure: report)
    }

    public func preview(_ context: AgentContext, user: String?, includeRecorded: Bool) async throws -> [Email] {
        let (stuckAfter, realertAfter, recipients) = try Self.settings(context.options)
        let stuck = try await Self.findStuck(context, stuckAfter: stuckAfter).tasks
        let keys = stuck.map { Self.episodeKey($0, realertAfter: realertAfter, context: context) }
        let recorded =
            includeRecorded ? [] : try await context.effects.recordedKeys(kind: Self.alertKind, keys: keys)
        let newly = zip(stuck, keys).filter { !recorded.contains($0.1) }.map(\.0)
        return newly.isEmpty
            ? []
            : [
                Self.digest(
                    newly, to: recipients, stuckAfter: stuckAfter, job: context.job,
                    listed: includeRecorded ? Int.max : Self.digestLimit)
            ]
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

    /// `stuck_after` (48h), `realert_after`, and the `alert_to` addresses (comma-separated).
    static func settings(_ options: AgentOptions) throws -> (
        stuckAfter: Duration, realertAfter: Duration?, recipients: [EmailAddress]
    ) {
        // Checked by the job table loader, so this parse does not fail on a loaded table.
        let recipients = try EmailAddress.list(parsing: options.string("alert_to") ?? "")
        return (
            options.duration("stuck_after", default: .seconds(48 * 3600)), options.duration("realert_after"), recipients
        )
    }

    static func findStuck(_ context: AgentContext, stuckAfter: Duration) async throws -> (
        tasks: [StuckTask], bad: BadRows
    ) {
        var bad = BadRows()
        var tasks: [StuckTask] = []
        for row in try await context.database.query(Self.stuckQuery, [.timestamp(context.now), .interval(stuckAfter)])
        {
            let id = (try? row.string("id", default: "")) ?? ""
            guard let days = try row.int("days_stuck"), let lastUpdated = try row.string("last_updated") else {
                bad.add(id: id, reason: "\"lastUpdated\" is not a finite timestamp", logger: context.logger)
                continue
            }
            tasks.append(
                StuckTask(
                    id: id, title: try row.string("title", default: ""),
                    project: try row.string("project", default: ""), status: try row.string("status", default: ""),
                    lastUpdated: lastUpdated, daysStuck: days))
        }
        return (tasks, bad)
    }

    /// One stuck episode of a task; with `realert_after`, each further period is a new one.
    static func episodeKey(_ task: StuckTask, realertAfter: Duration?, context: AgentContext) -> String {
        var key = "\(context.job):\(task.id)@\(task.lastUpdated)"
        if let realertAfter, let last = InstantFormat.parse(task.lastUpdated) {
            let period = max(1, realertAfter.components.seconds)
            key += "#\(Int64(context.now.timeIntervalSince(last)) / period)"
        }
        return key
    }

    /// How many tasks a digest lists in full (the oldest); the rest are counted, with the
    /// command that lists them all. A backlog of thousands stays an email a server accepts.
    static let digestLimit = 200

    static func digest(
        _ tasks: [StuckTask], to recipients: [EmailAddress], stuckAfter: Duration, job: String,
        listed limit: Int = digestLimit
    ) -> Email {
        let threshold = DurationParser.format(stuckAfter)
        let subject =
            "[ZOARK] \(tasks.count) task\(tasks.count == 1 ? "" : "s") stuck (no update for \(threshold) or more)"
        var text = "These ACTIVE tasks have had no update for \(threshold) or more:\n\n"
        var rows = ""
        for task in tasks.prefix(limit) {
            let days = "\(task.daysStuck) day\(task.daysStuck == 1 ? "" : "s")"
            text +=
                "- \(task.title) (project \(task.project), \(task.status)): stuck \(days), last updated \(task.lastUpdated)\n"
            rows +=
                "<tr><td>\(htmlEscape(task.title))</td><td>\(htmlEscape(task.project))</td>"
                + "<td>\(htmlEscape(task.status))</td><td>\(days)</td><td>\(htmlEscape(task.lastUpdated))</td></tr>\n"
        }
        var more = ""
        if tasks.count > limit {
            let line =
                "…and \(tasks.count - limit) more stuck task\(tasks.count - limit == 1 ? "" : "s"), not listed here. "
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
