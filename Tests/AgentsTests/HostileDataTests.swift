import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Ledger
@testable import ZOARK
@testable import VectorOS
import TestSupport

/// Issue "hostile and broken product data": each row of its table reproduced against the real
/// servers (aiosmtpd, PostgreSQL with a non-UTC time zone, local HTTP servers).
@Suite("Hostile product data")
struct HostileDataTests {
    static let injection =
        "victim@example.com>\r\nDATA\r\nFrom: ceo@example.com\r\nSubject: wire the money\r\n\r\nPay now.\r\n.\r\n"
        + "MAIL FROM:<ceo@example.com>\r\nRCPT TO:<attacker@evil.com"

    static func steps(_ rows: [(id: String, email: String, amount: String, deadline: String)]) -> String {
        let values = rows.map { row in
            let email = row.email.replacingOccurrences(of: "'", with: "''")
            return
                "('\(row.id)', 'inv-\(row.id)', 'FINANCE_CHECK', '{}', E'\(email.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n"))', 'PENDING', \(row.deadline), NOW)"
        }.joined(separator: ",\n")
        let invoices = rows.map { "('inv-\($0.id)', 'p1', \($0.amount), NOW)" }.joined(separator: ", ")
        return """
            INSERT INTO "Project" ("id", "name", "updatedAt") VALUES ('p1', E'Harbor\\r\\nBcc: x@evil.com', NOW);
            INSERT INTO "Invoice" ("id", "projectId", "amount", "updatedAt") VALUES \(invoices);
            INSERT INTO "ApprovalStep" ("id", "invoiceId", "stage", "requiredDocs", "assigneeEmail", "status", "deadline", "updatedAt")
            VALUES \(values);
            """
    }

    @Test(
        "rows 1-2: an assignee that smuggles SMTP commands or a second recipient is refused; exactly one real nudge goes out"
    )
    func injectedRecipients() async throws {
        let database = try await ZoarkDatabase("hostileinject")
        try await database.seed(
            Self.steps([
                ("ok", "ok@example.com", "25000", "NOW - interval '3 days'"),
                ("inject", Self.injection, "25000", "NOW - interval '3 days'"),
                ("list", "Victim <v@x>, attacker@evil.com", "25000", "NOW - interval '3 days'"),
                ("list2", "Victim <v@example.com>, attacker@evil.com", "25000", "NOW - interval '3 days'"),
            ]))
        let smtp = try await TestSMTPServer()
        func run() async throws -> AgentReport {
            try await ApprovalNudger().run(
                database.context(
                    job: "n", runID: try await database.newRun("n"),
                    mailer: smtpMailer(port: smtp.port)))
        }
        let first = try await run()
        #expect(first.outcome["emailed"] == 1)
        #expect(first.outcome["invalid_recipients"] == 3)
        #expect(first.failure?.contains("3 to an invalid recipient") == true)
        let messages = try smtp.messages()
        #expect(messages.count == 1)
        let message = try #require(messages.first)
        #expect(message.hasPrefix("X-Envelope-From: runner@example.com\r\nX-Envelope-To: ok@example.com\r\n"))
        #expect(headerValue("To", in: message) == "ok@example.com")
        let (text, html) = decodedParts(message)
        for part in [message, text, html] {
            #expect(!part.contains("attacker") && !part.contains("ceo@"))
        }
        // The project's name carries a Bcc line: it stays in the body, never a header.
        #expect(headerValue("Bcc", in: message) == nil)
        #expect(text.contains("Harbor\r\nBcc: x@evil.com"))
        let failed = try await database.connection.query(
            "SELECT target, last_error FROM runner.effects WHERE status = 'failed' ORDER BY target")
        #expect(failed.count == 3)
        for row in failed {
            let error = try row.string("last_error") ?? ""
            #expect(error.hasPrefix("invalid recipient"))
            #expect(!error.unicodeScalars.contains { $0 == "\r" || $0 == "\n" })
        }
        #expect(
            try await database.count(#"SELECT count(*) FROM "ApprovalStep" WHERE "lastNudgedAt" IS NOT NULL"#) == 1)

        // Recorded once: the next run neither sends nor counts them again.
        let second = try await run()
        #expect(second.outcome["invalid_recipients"] == nil)
        #expect(second.outcome["emailed"] == 0)
        #expect(try smtp.messages().count == 1)

        // The data is mended: the nudge goes out to the real address, once.
        try await database.seed(#"UPDATE "ApprovalStep" SET "assigneeEmail" = 'v2@example.com' WHERE "id" = 'list2'"#)
        let third = try await run()
        #expect(third.outcome["emailed"] == 1)
        let recipients = try smtp.messages().compactMap { headerValue("To", in: $0) }
        #expect(recipients.sorted() == ["ok@example.com", "v2@example.com"])
    }

    @Test("rows 4-5: NaN, infinite and huge amounts and a -infinity deadline are bad rows; every other step is nudged")
    func brokenNudgerRows() async throws {
        let database = try await ZoarkDatabase("hostilenudger")
        try await database.seed(
            Self.steps([
                ("good", "good@example.com", "25000", "NOW - interval '3 days'"),
                ("nan", "a@example.com", "'NaN'", "NOW - interval '3 days'"),
                ("inf", "b@example.com", "'Infinity'", "NOW - interval '3 days'"),
                ("ninf", "c@example.com", "'-Infinity'", "NOW - interval '3 days'"),
                ("huge", "d@example.com", "9.3e16", "NOW - interval '3 days'"),
                ("past", "e@example.com", "100", "'-infinity'"),
                ("future", "f@example.com", "100", "'infinity'"),
                ("negative", "g@example.com", "-1234.5", "NOW - interval '9 days'"),
            ]))
        let report = try await ApprovalNudger().run(
            database.context(job: "n", runID: try await database.newRun("n")))
        #expect(report.outcome["bad_rows"] == 5)
        #expect(report.outcome["overdue"] == 2)
        #expect(report.outcome["drafted"] == 2)
        guard case .array(let ids)? = report.outcome["bad_row_ids"] else {
            Issue.record("no bad_row_ids in \(report.outcome)")
            return
        }
        #expect(Set(ids.map(\.text)) == Set(["nan", "inf", "ninf", "huge", "past"].map { JSONValue.string($0).text }))
        #expect(report.metrics.contains(Metric("bad_rows", 5)))
        let subjects = try await database.connection.query(
            "SELECT payload->>'subject' AS subject FROM runner.effects WHERE kind = 'email' ORDER BY id"
        ).compactMap { try $0.string("subject") }
        #expect(subjects.contains("[Action Required] Approval Pending — FINANCE_CHECK ($25,000.00)"))
        #expect(
            subjects.contains("[CRITICAL — Immediate Action Required] Approval Pending — FINANCE_CHECK (-$1,234.50)"))
    }

    @Test("row 5: a -infinity lastUpdated is a bad row for the task monitor; the other stuck tasks are alerted")
    func infiniteTaskTimestamp() async throws {
        let database = try await ZoarkDatabase("hostiletasks")
        try await database.seed(
            """
            INSERT INTO "Project" ("id", "name", "updatedAt") VALUES ('p1', 'Apollo', NOW);
            INSERT INTO "Task" ("id", "projectId", "title", "status", "lastUpdated", "updatedAt") VALUES
                ('old', 'p1', 'Stuck', 'ACTIVE', NOW - interval '3 days', NOW),
                ('minf', 'p1', 'Never', 'ACTIVE', '-infinity', NOW),
                ('pinf', 'p1', 'Future', 'ACTIVE', 'infinity', NOW);
            """)
        let report = try await TaskMonitor().run(
            database.context(job: "st", runID: try await database.newRun("st")))
        #expect(report.outcome["stuck"] == 1)
        #expect(report.outcome["bad_rows"] == 1)
        #expect(report.outcome["bad_row_ids"] == ["minf"])
        #expect(report.outcome["newly_stuck"] == 1)
        #expect(report.outcome["drafted"] == 1)
    }

    @Test(
        "row 4: one deal with an infinite value or timestamp is skipped and counted; every workspace still gets its insights"
    )
    func brokenDeals() async throws {
        let database = try await ZoarkDatabase("hostiledeals")
        try await database.connection.execute(VectorOSSchema.sql)
        try await database.seed(
            """
            INSERT INTO users ("id", "email", "updatedAt") VALUES ('u1', 'o@vector.example', NOW);
            INSERT INTO workspaces ("id", "name", "slug", "ownerId", "updatedAt") VALUES
                ('w1', 'A', 'a', 'u1', NOW), ('w2', 'B', 'b', 'u1', NOW);
            INSERT INTO deals ("id", "title", "value", "stage", "probability", "closeDate", "workspaceId", "createdAt", "updatedAt") VALUES
                ('a-inf-value', 'Infinite', 'Infinity', 'lead', 50, NULL, 'w1', NOW - interval '40 days', NOW - interval '20 days'),
                ('a-nan-value', 'NaN', 'NaN', 'lead', 50, NULL, 'w1', NOW - interval '40 days', NOW - interval '20 days'),
                ('a-close-inf', 'Close', 5000, 'lead', 50, 'infinity', 'w1', NOW - interval '40 days', NOW - interval '20 days'),
                ('a-upd-minf', 'Updated', 5000, 'lead', 50, NULL, 'w1', NOW - interval '40 days', '-infinity'),
                ('a-huge', 'Huge', 1e300, 'lead', 50, NULL, 'w1', NOW - interval '2 days', NOW - interval '1 day'),
                ('a-good', 'Good A', 5000, 'lead', 50, NULL, 'w1', NOW - interval '40 days', NOW - interval '20 days'),
                ('b-good', 'Good B', 5000, 'qualified', 50, NULL, 'w2', NOW - interval '40 days', NOW - interval '20 days');
            """)
        let report = try await InsightGenerator().run(
            database.context(job: "di", runID: try await database.newRun("di"), sharesLedger: true))
        #expect(report.outcome["bad_rows"] == 4)
        #expect(report.outcome["deals_scanned"] == 3)
        #expect(report.outcome["workspaces"] == 2)
        #expect(report.failure == nil)
        #expect(try await database.count(#"SELECT count(DISTINCT "workspaceId") AS count FROM insights"#) == 2)
        // The huge value is a finite number: the high-value rule reads it without trapping.
        let hugeDetail = DealRules.anomalies(
            of: Deal(
                id: "h", workspaceID: "w", title: "t", value: 1e300, stage: "lead", probability: 10, closeDate: nil,
                createdAt: Date(), updatedAt: Date()), now: Date())
        #expect(hugeDetail.contains { $0.kind == .highValueAtRisk && $0.detail.contains("1e+300") })
    }

    @Test("row 9: a rejected digest leaves its episodes for the next run; a big backlog lists the oldest 200")
    func rejectedDigest() async throws {
        let database = try await ZoarkDatabase("hostiledigest")
        try await database.seed(
            """
            INSERT INTO "Project" ("id", "name", "updatedAt") VALUES ('p1', 'Apollo', NOW);
            INSERT INTO "Task" ("id", "projectId", "title", "status", "lastUpdated", "updatedAt")
            SELECT 't' || lpad(g::text, 3, '0'), 'p1', 'Task ' || g, 'ACTIVE', NOW - interval '3 days' - g * interval '1 minute', NOW
            FROM generate_series(1, 250) g;
            """)
        let options = TaskMonitor.Options(alertTo: ["ops@example.com"])
        let rejecting = try await TestSMTPServer(reject: true)
        let refused = try await TaskMonitor(options: options).run(
            database.context(
                job: "st", runID: try await database.newRun("st"), mailer: smtpMailer(port: rejecting.port)))
        #expect(refused.outcome["stuck"] == 250)
        #expect(refused.outcome["newly_stuck"] == 0)
        #expect(refused.outcome["email_failed"] == 1)
        #expect(refused.failure != nil)
        try await rejecting.stop()

        let smtp = try await TestSMTPServer()
        let told = try await TaskMonitor(options: options).run(
            database.context(
                job: "st", runID: try await database.newRun("st"), mailer: smtpMailer(port: smtp.port)))
        #expect(told.outcome["newly_stuck"] == 250)
        #expect(told.outcome["emailed"] == 1)
        let message = try #require(try smtp.messages().first)
        let (text, _) = decodedParts(message)
        #expect(text.components(separatedBy: "\n").filter { $0.hasPrefix("- Task ") }.count == 200)
        // The oldest first: task 250 is the oldest, task 51 the 200th oldest; 1 to 50 are counted.
        #expect(text.contains("- Task 250 "))
        #expect(text.contains("- Task 51 "))
        #expect(!text.contains("- Task 50 "))
        #expect(text.contains("…and 50 more stuck tasks, not listed here. List them all with: runner preview st --all"))

        let again = try await TaskMonitor(options: options).run(
            database.context(
                job: "st", runID: try await database.newRun("st"), mailer: smtpMailer(port: smtp.port)))
        #expect(again.outcome["newly_stuck"] == 0)
        #expect(try smtp.messages().count == 1)
        let all = try await TaskMonitor(options: options).preview(
            database.context(job: "st", runID: 0, dryRun: true), user: nil, includeRecorded: true)
        #expect(all.count == 1)
        #expect(all.first?.text.components(separatedBy: "\n").filter { $0.hasPrefix("- Task ") }.count == 250)
    }

    @Test("row 11: an insight a user deleted comes back, under the same key; deleting an old closed one moves no key")
    func deletedInsight() async throws {
        let database = try await InsightGeneratorTests.database("hostiledeleted")
        let context = {
            database.context(job: "di", runID: try await database.newRun("di"), sharesLedger: true)
        }
        let first = try await InsightGenerator().run(try await context())
        let created = try await database.count("SELECT count(*) FROM insights")
        #expect(first.outcome["insights_created"] == .number(Double(created)))
        let victim = try #require(
            try await database.connection.query(#"SELECT "id", "dealId", "type" FROM insights ORDER BY "id" LIMIT 1"#)
                .first)
        let (id, deal, type) = (try victim.string("id")!, try victim.string("dealId")!, try victim.string("type")!)
        try await database.connection.query(#"DELETE FROM insights WHERE "id" = $1"#, [PostgresValue(id)])
        // Within ten minutes the claim may belong to a run still working: not taken over.
        let soon = try await InsightGenerator().run(try await context())
        #expect(soon.outcome["insights_created"] == 0)
        try await database.connection.execute(
            "UPDATE runner.effects SET done_at = now() - interval '11 minutes', created_at = now() - interval '11 minutes'"
        )
        let later = try await InsightGenerator().run(try await context())
        #expect(later.outcome["insights_created"] == 1)
        #expect(try await database.count("SELECT count(*) FROM insights") == created)
        #expect(
            try await database.count(
                #"SELECT count(*) FROM insights WHERE "id" = '\#(id)' AND "dealId" = '\#(deal)' AND "type" = '\#(type)'"#
            )
                == 1)

        // Closed long ago: the episode after it begins, with an insight of its own.
        let pair = #""dealId" = '\#(deal)' AND "type" = '\#(type)'"#
        try await database.seed(
            #"UPDATE insights SET "status" = 'dismissed', "updatedAt" = NOW - interval '30 days' WHERE \#(pair)"#)
        let returned = try await InsightGenerator().run(try await context())
        #expect(returned.outcome["insights_created"] == 1)
        #expect(try await database.count("SELECT count(*) FROM insights WHERE \(pair)") == 2)
        // That one closes too, long ago. Editing the older closed insight, or deleting it, must
        // not move the key back to an episode already had: one more insight, then nothing.
        try await database.seed(
            #"UPDATE insights SET "status" = 'actioned', "updatedAt" = NOW - interval '20 days' WHERE \#(pair) AND "status" = 'new'"#
        )
        try await database.seed(
            #"UPDATE insights SET "status" = 'actioned', "updatedAt" = NOW - interval '10 days' WHERE "id" = '\#(id)'"#)
        let third = try await InsightGenerator().run(try await context())
        #expect(third.outcome["insights_created"] == 1)
        #expect(try await database.count("SELECT count(*) FROM insights WHERE \(pair)") == 3)
        try await database.seed(
            #"UPDATE insights SET "status" = 'dismissed', "updatedAt" = NOW - interval '9 days' WHERE \#(pair) AND "status" = 'new'"#
        )
        try await database.connection.query(#"DELETE FROM insights WHERE "id" = $1"#, [PostgresValue(id)])
        try await database.connection.execute(
            "UPDATE runner.effects SET done_at = now() - interval '11 minutes', created_at = now() - interval '11 minutes'"
        )
        let fourth = try await InsightGenerator().run(try await context())
        #expect(fourth.outcome["insights_created"] == 1)
        let steady = try await InsightGenerator().run(try await context())
        #expect(steady.outcome["insights_created"] == 0)
        #expect(try await database.count("SELECT count(*) FROM insights WHERE \(pair)") == 3)
    }
}
