import Engine
import Foundation
import JobTable
import Ledger
import Logging
import Outbox
import PostgresClient

/// ZOARK's approval nudger: PENDING approval steps past their deadline whose last nudge is
/// older than `cooldown` (24 h) get an email to their assignee, urgent by days overdue.
/// `"lastNudgedAt"` is set only after a successful send, so a failed send is retried rather
/// than silently cooled down. `escalate_to` is copied at critical urgency.
public struct ApprovalNudger: ZOARKAgent {
    public static let name: AgentName = "approval-nudger"
    package static let activity = AgentLog.Action.approvalNudge
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

    package struct Step: Sendable {
        package let id: String
        package let stage: String
        /// The assignee, parsed; a value that is not one address is recorded as an invalid recipient.
        package let assignee: Result<EmailAddress, EmailAddress.Invalid>
        package let project: String
        package let amount: Double
        package let deadline: String
        package let daysOverdue: Int
        package let requiredDocs: [String]
        /// The episode: the last nudge this cooldown follows, or "never".
        package let lastNudgedAt: String
    }

    /// `with:` keys: `cooldown` (24h), `escalate_to` (copied at critical urgency; none).
    public struct Options: AgentOptionSet {
        public var cooldown: Duration = .seconds(24 * 3600)
        public var escalateTo: [EmailAddress] = []

        public init() {}

        public init(cooldown: Duration = .seconds(24 * 3600), escalateTo: [EmailAddress] = []) {
            self.cooldown = cooldown
            self.escalateTo = escalateTo
        }

        public static let fields: [OptionField<Self>] = [
            .duration("cooldown", \.cooldown), .emailAddresses("escalate_to", \.escalateTo),
        ]
    }

    public let options: Options

    public init(options: Options = Options()) {
        self.options = options
    }

    /// Steps read, rendered and recorded at a time: memory holds one page, whatever the backlog.
    package static let pageSize = 1000

    public func run(_ context: AgentContext) async throws -> AgentReport {
        let (cooldown, escalateTo) = (options.cooldown, options.escalateTo)
        let clock = ContinuousClock()
        var phases = PhaseTimer()
        let delivery = EmailDelivery(context: context.outbox)
        var overdue = 0
        var byUrgency: [Urgency: Int] = [:]
        var bad = BadRows()
        var results: [EmailDelivery.Result] = []
        var repaired = 0
        var notAttempted = 0
        var rendered = 0
        let readStart = clock.now
        var firstPage: Duration?
        try await context.forEachPage(
            Self.overdueQuery, [.timestamp(context.now), .interval(cooldown)], size: Self.pageSize
        ) { rows in
            if firstPage == nil { firstPage = clock.now - readStart }
            let steps = Self.steps(rows, bad: &bad, logger: context.logger)
            overdue += steps.count
            for step in steps { byUrgency[Urgency(daysOverdue: step.daysOverdue), default: 0] += 1 }
            if context.dryRun { return }
            // A stopping run starts no further page; its steps wait for the next run.
            if Task.isCancelled { return }
            var deliverable: [(step: Step, to: EmailAddress)] = []
            for step in steps {
                switch step.assignee {
                case .success(let address): deliverable.append((step, address))
                case .failure(let invalid):
                    let result = try await delivery.recordInvalid(invalid, key: Self.key(step))
                    if result != .alreadyRecorded { results.append(result) }
                }
            }
            let batch = try await delivery.deliver(deliverable, key: { Self.key($0.step) }, phases: &phases) {
                await Self.emails(for: $0, escalateTo: escalateTo)
            }
            results += batch.results
            notAttempted += batch.notAttempted
            rendered += batch.rendered
            // nil: the product database's clock stamps it, never this host's.
            var cooled: [(step: Step, at: Date?)] = []
            for (item, delivered) in zip(deliverable, batch.items) {
                switch delivered {
                case .sentNow: cooled.append((item.step, nil))
                case .sentBefore(let at):
                    // Sent by a run that stopped before it could start the cooldown: start it now.
                    cooled.append((item.step, at))
                    repaired += 1
                case .notSent: break
                }
            }
            do {
                try await Self.markNudged(cooled, on: context.database)
            } catch  where Task.isCancelled {
                // Cancelled mid-statement: the next run starts these cooldowns (the repair above).
            }
        }
        var report = ReportBuilder()
        report.count("overdue", overdue)
        report.phase("query_ms", firstPage ?? (clock.now - readStart))
        phases.report(into: &report)
        bad.report(into: &report)
        for urgency in Urgency.allCases { report.note(urgency.rawValue, count: byUrgency[urgency] ?? 0) }
        if context.dryRun {
            report.note("would_nudge", .number(Double(overdue)))
            return report.report
        }
        report.note("cooldowns_repaired", count: repaired)
        report.note("not_attempted", count: notAttempted)
        report.metric("emails_rendered", Double(rendered))
        report.failure = EmailDelivery.summarize(results, into: &report)
        return report.report
    }

    public func preview(_ context: AgentContext, user: String?, includeRecorded: Bool) async throws -> [Email] {
        let (cooldown, escalateTo) = (options.cooldown, options.escalateTo)
        var previews: [Email] = []
        try await context.forEachPage(
            Self.overdueQuery, [.timestamp(context.now), .interval(cooldown)], size: Self.pageSize
        ) { rows in
            var bad = BadRows()
            let steps = Self.steps(rows, bad: &bad, logger: context.logger).compactMap { step in
                if case .success(let address) = step.assignee { (step, address) } else { nil }
            }
            let keys = steps.map { EmailDelivery.recordedKey(Self.key($0.0), scope: context.effectsScope) }
            let recorded =
                includeRecorded ? [] : try await context.effects.recordedKeys(kind: EmailDelivery.kind.name, keys: keys)
            previews += zip(steps, keys).filter { !recorded.contains($0.1) }.map {
                Self.email(for: $0.0.0, to: $0.0.1, escalateTo: escalateTo)
            }
        }
        return previews
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

    /// One nudge per step per cooldown episode (the last nudge it follows).
    package static func key(_ step: Step) -> String {
        "nudge:\(step.id)@\(step.lastNudgedAt)"
    }

    /// A page's overdue steps; the rows that cannot be nudged (an infinite deadline, an amount
    /// that is not a finite number of dollars, a value that does not decode) go to `bad`.
    package static func steps(_ rows: PostgresRows, bad: inout BadRows, logger: Logger) -> [Step] {
        var steps: [Step] = []
        for row in rows {
            let id = (try? row.string("id", default: "")) ?? ""
            do {
                guard let amount = try row.double("amount"), amount.isFinite, abs(amount) < 1e15 else {
                    bad.add(id: id, reason: "the invoice amount is not a finite number of dollars", logger: logger)
                    continue
                }
                guard let days = try row.int("days_overdue"), let deadline = try row.string("deadline") else {
                    bad.add(id: id, reason: "the deadline is not a finite timestamp", logger: logger)
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
                bad.add(id: id, reason: "\(error)", logger: logger)
            }
        }
        return steps
    }

    /// Starts the cooldowns: only after a send that succeeded. One statement per page. A step
    /// without a time (sent just now) is stamped with the database's `now()`.
    package static func markNudged(_ steps: [(step: Step, at: Date?)], on database: PostgresConnection) async throws {
        guard !steps.isEmpty else { return }
        try await database.query(
            """
            UPDATE "ApprovalStep" s
            SET "lastNudgedAt" = coalesce(n.at, now()) AT TIME ZONE 'UTC',
                "updatedAt" = coalesce(n.at, now()) AT TIME ZONE 'UTC'
            FROM unnest($1::text[], $2::timestamptz[]) AS n(id, at)
            WHERE s."id" = n.id
            """, [.array(steps.map(\.step.id)), .array(steps.map { $0.at.map(PostgresTimestamp.format) })])
    }

    /// A page's emails, rendered in chunks on all cores.
    /// One email per step, in the steps' order, each to its parsed assignee.
    package static func emails(for steps: [(step: Step, to: EmailAddress)], escalateTo: [EmailAddress], chunk: Int = 1000)
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

    package static func email(for step: Step, to assignee: EmailAddress, escalateTo: [EmailAddress]) -> Email {
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
    package static func formatDollars(_ amount: Double) -> String {
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
