import Foundation

/// ZOARK's approval nudger: PENDING approval steps past their deadline whose last nudge is
/// older than `cooldown` (24 h) get an email to their assignee, urgent by days overdue.
/// `"lastNudgedAt"` is set only after a successful send, so a failed send is retried rather
/// than silently cooled down. `escalate_to` is copied at critical urgency.
public struct ApprovalNudger: Agent {
    public enum Urgency: String, Sendable, CaseIterable {
        case low, medium, high, critical

        /// By whole days overdue: 0-1 low, 2-3 medium, 4-7 high, 8+ critical.
        public init(daysOverdue: Int) {
            switch daysOverdue {
            case ..<2: self = .low
            case 2...3: self = .medium
            case 4...7: self = .high
            default: self = .critical
            }
        }

        public var label: String {
            switch self {
            case .low: return "Reminder"
            case .medium: return "Action Required"
            case .high: return "Urgent"
            case .critical: return "CRITICAL — Immediate Action Required"
            }
        }
    }

    struct Step: Sendable {
        let id: String
        let stage: String
        /// The assignee, parsed; a value that is not one address is recorded as an invalid recipient.
        let assignee: Result<EmailAddress, EmailAddress.Invalid>
        let project: String
        let amount: Double
        let deadline: String
        let daysOverdue: Int
        let requiredDocs: [String]
        /// The episode: the last nudge this cooldown follows, or "never".
        let lastNudgedAt: String
    }

    public init() {}

    public func run(_ context: AgentContext) async throws -> AgentReport {
        let (cooldown, escalateTo) = try Self.settings(context.options)
        let clock = ContinuousClock()
        let queryStart = clock.now
        let (steps, bad) = try await Self.findOverdue(context, cooldown: cooldown)
        var outcome: [String: JSONValue] = ["overdue": .number(Double(steps.count))]
        var metrics = [
            Metric("overdue", Double(steps.count)),
            Metric("query_ms", (clock.now - queryStart).milliseconds, unit: "ms"),
        ]
        bad.report(into: &outcome, metrics: &metrics)
        for urgency in Urgency.allCases {
            let count = steps.filter { Urgency(daysOverdue: $0.daysOverdue) == urgency }.count
            if count > 0 { outcome[urgency.rawValue] = .number(Double(count)) }
        }
        if context.dryRun {
            outcome["would_nudge"] = .number(Double(steps.count))
            return AgentReport(outcome: outcome, metrics: metrics)
        }

        let delivery = EmailDelivery(context: context)
        var results: [EmailDelivery.Result] = []
        var deliverable: [(step: Step, to: EmailAddress)] = []
        for step in steps {
            switch step.assignee {
            case .success(let address): deliverable.append((step, address))
            case .failure(let invalid):
                let result = try await delivery.recordInvalid(invalid, key: Self.key(step))
                if result != .alreadyRecorded { results.append(result) }
            }
        }
        let renderStart = clock.now
        let emails = await Self.emails(for: deliverable, escalateTo: escalateTo)
        let keys = deliverable.map { EmailDelivery.recordedKey(Self.key($0.step), job: context.job) }
        metrics.append(Metric("render_ms", (clock.now - renderStart).milliseconds, unit: "ms"))
        let recordStart = clock.now
        let recorded = try await Self.record(emails, keys: keys, context: context)
        metrics.append(Metric("record_ms", (clock.now - recordStart).milliseconds, unit: "ms"))

        var repaired = 0
        var notAttempted = 0
        for (index, (step, _)) in deliverable.enumerated() {
            guard let effect = recorded[keys[index]] else { continue }
            // A stopping run starts no further nudge; those left stay pending for the next run.
            if Task.isCancelled, effect.status == .pending {
                notAttempted += 1
                continue
            }
            switch effect.status {
            case .pending:
                let result = try await delivery.attempt(effect.id, emails[index])
                results.append(result)
                if result == .sent {
                    do {
                        try await Self.markNudged(step, at: Date(), on: context.database)
                    } catch where Task.isCancelled {
                        // Cancelled mid-statement: the next run starts the cooldown (the `.sent` case below).
                    }
                }
            case .sent:
                // Sent by a run that stopped before it could start the cooldown: start it now.
                try await Self.markNudged(step, at: effect.doneAt ?? Date(), on: context.database)
                repaired += 1
            case .draft:
                if effect.isNew { results.append(.drafted) }
            case .failed, .unknown:
                if effect.isNew { results.append(.failed) }
            }
        }
        if repaired > 0 { outcome["cooldowns_repaired"] = .number(Double(repaired)) }
        if notAttempted > 0 { outcome["not_attempted"] = .number(Double(notAttempted)) }
        let failure = EmailDelivery.summarize(results, into: &outcome, metrics: &metrics)
        try await AgentLog.write(.approvalNudge, outcome: outcome, failed: failure != nil, on: context.database)
        return AgentReport(outcome: outcome, metrics: metrics, failure: failure)
    }

    public func preview(_ context: AgentContext, user: String?, includeRecorded: Bool) async throws -> [Email] {
        let (cooldown, escalateTo) = try Self.settings(context.options)
        let steps = try await Self.findOverdue(context, cooldown: cooldown).steps.compactMap { step in
            if case .success(let address) = step.assignee { (step, address) } else { nil }
        }
        let keys = steps.map { EmailDelivery.recordedKey(Self.key($0.0), job: context.job) }
        let recorded = includeRecorded ? [] : try await context.effects.recordedKeys(kind: EmailDelivery.kind, keys: keys)
        return zip(steps, keys).filter { !recorded.contains($0.1) }.map {
            Self.email(for: $0.0.0, to: $0.0.1, escalateTo: escalateTo)
        }
    }

    /// The main query, `$1` now and `$2` the threshold (the benchmark runs it alone too). A
    /// `-infinity` deadline is overdue but has no day count (NULL): that row is reported bad.
    public static let overdueQuery = """
        SELECT s."id", s."stage"::text AS stage, s."assigneeEmail" AS assignee, p."name" AS project,
               i."amount", s."requiredDocs" AS docs,
               CASE WHEN isfinite(s."deadline") THEN to_char(s."deadline", 'YYYY-MM-DD HH24:MI "UTC"') END AS deadline,
               CASE WHEN isfinite(s."deadline") THEN
                   floor(extract(epoch FROM ($1::timestamptz AT TIME ZONE 'UTC') - s."deadline") / 86400)::int
               END AS days_overdue,
               CASE WHEN s."lastNudgedAt" IS NULL THEN 'never'
                    WHEN isfinite(s."lastNudgedAt") THEN to_char(s."lastNudgedAt", 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                    ELSE s."lastNudgedAt"::text END AS last_nudged
        FROM "ApprovalStep" s
        JOIN "Invoice" i ON i."id" = s."invoiceId"
        JOIN "Project" p ON p."id" = i."projectId"
        WHERE s."status" = 'PENDING'
          AND s."deadline" < ($1::timestamptz AT TIME ZONE 'UTC')
          AND (s."lastNudgedAt" IS NULL OR s."lastNudgedAt" < ($1::timestamptz AT TIME ZONE 'UTC') - $2::interval)
        ORDER BY s."deadline", s."id"
        """

    /// `cooldown` (24h) and `escalate_to` (none when empty; checked by the job table loader).
    static func settings(_ options: AgentOptions) throws -> (cooldown: Duration, escalateTo: [EmailAddress]) {
        (
            options.duration("cooldown", default: .seconds(24 * 3600)),
            try EmailAddress.list(parsing: options.string("escalate_to") ?? "")
        )
    }

    /// One nudge per step per cooldown episode (the last nudge it follows).
    static func key(_ step: Step) -> String {
        "nudge:\(step.id)@\(step.lastNudgedAt)"
    }

    /// The overdue steps, and the rows that cannot be nudged (an infinite deadline, an amount
    /// that is not a finite number of dollars, a value that does not decode).
    static func findOverdue(_ context: AgentContext, cooldown: Duration) async throws -> (
        steps: [Step], bad: BadRows
    ) {
        var bad = BadRows()
        var steps: [Step] = []
        for row in try await context.database.query(Self.overdueQuery, [.timestamp(context.now), .interval(cooldown)]) {
            let id = (try? row.string("id", default: "")) ?? ""
            do {
                guard let amount = try row.double("amount"), amount.isFinite, abs(amount) < 1e15 else {
                    bad.add(id: id, reason: "the invoice amount is not a finite number of dollars", logger: context.logger)
                    continue
                }
                guard let days = try row.int("days_overdue"), let deadline = try row.string("deadline") else {
                    bad.add(id: id, reason: "the deadline is not a finite timestamp", logger: context.logger)
                    continue
                }
                let assignee = try row.string("assignee", default: "")
                steps.append(
                    Step(
                        id: id, stage: try row.string("stage", default: ""),
                        assignee: Result { () throws(EmailAddress.Invalid) in try EmailAddress(parsing: assignee) },
                        project: try row.string("project", default: ""), amount: amount, deadline: deadline,
                        daysOverdue: days, requiredDocs: try row.stringArray("docs")?.compactMap { $0 } ?? [],
                        lastNudgedAt: try row.string("last_nudged", default: "never")))
            } catch {
                bad.add(id: id, reason: "\(error)", logger: context.logger)
            }
        }
        return (steps, bad)
    }

    struct Recorded {
        let id: Int64
        let status: Effects.Status
        let isNew: Bool
        let doneAt: Date?
    }

    /// Records every nudge in one statement (drafts directly when no mailer is configured) and
    /// reads back those recorded before: two statements however many steps are overdue.
    static func record(_ emails: [Email], keys: [String], context: AgentContext) async throws -> [String: Recorded] {
        guard !keys.isEmpty else { return [:] }
        let status: Effects.Status = context.mailer == nil ? .draft : .pending
        var recorded: [String: Recorded] = [:]
        // Batches of a few thousand keep each statement's parameters to a few megabytes.
        for batch in stride(from: 0, to: keys.count, by: 2000) {
            let range = batch..<min(batch + 2000, keys.count)
            let inserted = try await context.effects.connection.query(
                """
                INSERT INTO runner.effects (kind, key, run_id, status, target, payload, done_at)
                SELECT $1, e.key, $2::bigint, $3, e.target, e.payload::jsonb, CASE WHEN $3 = 'draft' THEN now() END
                FROM unnest($4::text[], $5::text[], $6::text[]) AS e(key, target, payload)
                ON CONFLICT (kind, key) DO NOTHING
                RETURNING id, key
                """,
                [
                    PostgresValue(EmailDelivery.kind), .int64(context.runID), PostgresValue(status.rawValue),
                    .array(Array(keys[range])), .array(emails[range].map(\.recipients)),
                    .array(emails[range].map(\.payloadText)),
                ])
            for row in inserted {
                recorded[try row.string("key", default: "")] = Recorded(
                    id: try row.int64("id") ?? 0, status: status, isNew: true, doneAt: nil)
            }
        }
        let earlier = keys.filter { recorded[$0] == nil }
        if !earlier.isEmpty {
            let rows = try await context.effects.connection.query(
                "SELECT id, key, status, done_at FROM runner.effects WHERE kind = $1 AND key = ANY($2::text[])",
                [PostgresValue(EmailDelivery.kind), .array(earlier)])
            for row in rows {
                recorded[try row.string("key", default: "")] = Recorded(
                    id: try row.int64("id") ?? 0,
                    status: Effects.Status(rawValue: try row.string("status", default: "")) ?? .failed,
                    isNew: false, doneAt: try row.date("done_at"))
            }
        }
        return recorded
    }

    /// Starts the cooldown: only after a send that succeeded.
    static func markNudged(_ step: Step, at date: Date, on database: PostgresConnection) async throws {
        try await database.query(
            """
            UPDATE "ApprovalStep" SET "lastNudgedAt" = $2::timestamptz AT TIME ZONE 'UTC',
                                      "updatedAt" = $2::timestamptz AT TIME ZONE 'UTC'
            WHERE "id" = $1
            """, [PostgresValue(step.id), .timestamp(date)])
    }

    /// Every step's email, rendered in chunks on all cores: a large run renders 100,000.
    /// One email per step, in the steps' order, each to its parsed assignee.
    static func emails(for steps: [(step: Step, to: EmailAddress)], escalateTo: [EmailAddress], chunk: Int = 5000)
        async -> [Email]
    {
        guard steps.count > chunk else { return steps.map { email(for: $0.step, to: $0.to, escalateTo: escalateTo) } }
        return await withTaskGroup(of: (Int, [Email]).self) { group in
            for start in stride(from: 0, to: steps.count, by: chunk) {
                let slice = steps[start..<min(start + chunk, steps.count)]
                group.addTask { (start, slice.map { email(for: $0.step, to: $0.to, escalateTo: escalateTo) }) }
            }
            var chunks: [(Int, [Email])] = []
            for await rendered in group { chunks.append(rendered) }
            return chunks.sorted { $0.0 < $1.0 }.flatMap(\.1)
        }
    }

    static func email(for step: Step, to assignee: EmailAddress, escalateTo: [EmailAddress]) -> Email {
        let urgency = Urgency(daysOverdue: step.daysOverdue)
        let amount = formatDollars(step.amount)
        let subject = "[\(urgency.label)] Approval Pending — \(step.stage) (\(amount))"
        let days = "\(step.daysOverdue) day\(step.daysOverdue == 1 ? "" : "s")"
        let docs = step.requiredDocs.isEmpty ? "none listed" : step.requiredDocs.joined(separator: ", ")
        let text = """
            An approval step assigned to you is past its deadline.

            Stage: \(step.stage)
            Project: \(step.project)
            Amount: \(amount)
            Deadline: \(step.deadline)
            Days overdue: \(days)
            Required documents: \(docs)
            Urgency: \(urgency.label)
            """
        let docItems = step.requiredDocs.map { "<li>\(htmlEscape($0))</li>" }.joined()
        let html = """
            <html><body>
            <p>An approval step assigned to you is past its deadline.</p>
            <table cellpadding="4">
            <tr><th align="left">Stage</th><td>\(htmlEscape(step.stage))</td></tr>
            <tr><th align="left">Project</th><td>\(htmlEscape(step.project))</td></tr>
            <tr><th align="left">Amount</th><td>\(htmlEscape(amount))</td></tr>
            <tr><th align="left">Deadline</th><td>\(htmlEscape(step.deadline))</td></tr>
            <tr><th align="left">Days overdue</th><td>\(days)</td></tr>
            <tr><th align="left">Urgency</th><td>\(htmlEscape(urgency.label))</td></tr>
            </table>
            <p>Required documents:</p><ul>\(docItems.isEmpty ? "<li>none listed</li>" : docItems)</ul>
            </body></html>
            """
        let cc = urgency == .critical ? escalateTo : []
        return Email(to: [assignee], cc: cc, subject: subject, text: text, html: html)
    }

    /// `$25,000.00`: grouped thousands, two decimals, whatever the machine's locale.
    static func formatDollars(_ amount: Double) -> String {
        // The caller skips other amounts as bad rows; this never traps on one either.
        guard amount.isFinite, abs(amount) < 1e15 else { return "an amount that is not a number" }
        let cents = Int64((abs(amount) * 100).rounded())
        var whole = String(cents / 100)
        var grouped = ""
        while whole.count > 3 {
            grouped = "," + whole.suffix(3) + grouped
            whole = String(whole.dropLast(3))
        }
        let fraction = cents % 100
        return (amount < 0 ? "-$" : "$") + whole + grouped + (fraction < 10 ? ".0" : ".") + String(fraction)
    }
}
