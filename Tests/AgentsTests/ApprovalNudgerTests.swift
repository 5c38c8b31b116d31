import Foundation
@testable import JobTable
import Testing

@testable import Engine
@testable import EmbeddedPostgres
@testable import ZOARK
import TestSupport

@Suite("Approval nudger")
struct ApprovalNudgerTests {
    /// Steps overdue by 0, 1, 2, 3, 4, 7 and 8 whole days (plus a few hours), one approved,
    /// one not yet due, one nudged an hour ago.
    static let seed = Seeds.approvalNudger

    static func subjects(_ smtp: TestSMTPServer) throws -> [String: String] {
        var result: [String: String] = [:]
        for message in try smtp.messages() {
            let to = message.split(separator: "\r\n").first { $0.hasPrefix("X-Envelope-To: ") }?.dropFirst(15) ?? ""
            result[String(to)] = headerValue("Subject", in: message)
        }
        return result
    }

    @Test("urgency labels and subjects at every boundary, escalation copied at critical only")
    func urgencyBoundaries() async throws {
        let database = try await ZoarkDatabase("nudgerurgency")
        try await database.seed(Self.seed)
        let smtp = try await TestSMTPServer()
        let report = try await ApprovalNudger(options: .init(escalateTo: ["boss@example.com"])).run(
            database.context(
                job: "approval-nudges", runID: try await database.newRun("approval-nudges"),
                mailer: smtpMailer(port: smtp.port)
            ))
        #expect(report.outcome["overdue"] == 7)
        #expect(report.outcome["emailed"] == 7)
        #expect(report.failure == nil)
        let subjects = try Self.subjects(smtp)
        #expect(subjects["d0@example.com"] == "[Reminder] Approval Pending — LEGAL_REVIEW ($25,000.00)")
        #expect(subjects["d1@example.com"] == "[Reminder] Approval Pending — FINANCE_CHECK ($25,000.00)")
        #expect(subjects["d2@example.com"] == "[Action Required] Approval Pending — MANAGER_APPROVAL ($25,000.00)")
        #expect(subjects["d3@example.com"] == "[Action Required] Approval Pending — FINANCE_CHECK ($25,000.00)")
        #expect(subjects["d4@example.com"] == "[Urgent] Approval Pending — FINANCE_CHECK ($25,000.00)")
        #expect(subjects["d7@example.com"] == "[Urgent] Approval Pending — FINANCE_CHECK ($25,000.00)")
        #expect(
            subjects["d8@example.com, boss@example.com"]
                == "[CRITICAL — Immediate Action Required] Approval Pending — EXECUTIVE_APPROVAL ($1,234,567.89)")
        #expect(subjects.count == 7)
        let first = try #require(try smtp.messages().first { $0.contains("X-Envelope-To: d0@example.com") })
        let (text, html) = decodedParts(first)
        #expect(text.contains("Required documents: Signed contract, W-9"))
        #expect(text.contains("Days overdue: 0 days"))
        #expect(html.contains("Harbor &lt;Renovation&gt;"))
        let nudged = try await database.count(
            #"SELECT count(*) FROM "ApprovalStep" WHERE "lastNudgedAt" > (now() AT TIME ZONE 'UTC') - interval '1 minute'"#
        )
        #expect(nudged == 7)
    }

    @Test("a nudge is not repeated inside the cooldown, and comes again after it")
    func cooldown() async throws {
        let database = try await ZoarkDatabase("nudgercooldown")
        try await database.seed(Self.seed)
        let smtp = try await TestSMTPServer()
        let mailer = smtpMailer(port: smtp.port)
        for _ in 0..<3 {
            _ = try await ApprovalNudger().run(
                database.context(
                    job: "n", runID: try await database.newRun("n"), mailer: mailer))
        }
        #expect(try smtp.messages().count == 7)
        // A day later (the cooldown has passed for s4 only), s4 is nudged again.
        try await database.seed(
            #"UPDATE "ApprovalStep" SET "lastNudgedAt" = NOW - interval '24 hours 1 minute' WHERE "id" = 's4'"#)
        let later = try await ApprovalNudger().run(
            database.context(job: "n", runID: try await database.newRun("n"), mailer: mailer))
        #expect(later.outcome["emailed"] == 1)
        #expect(try smtp.messages().count == 8)
    }

    @Test("when SMTP is down the cooldown does not start, and the next run sends the nudges")
    func smtpDownKeepsCooldownOff() async throws {
        let database = try await ZoarkDatabase("nudgerdown")
        try await database.seed(Self.seed)
        let port = try EmbeddedPostgres.freePort()
        let down = try await ApprovalNudger().run(
            database.context(
                job: "n", runID: try await database.newRun("n"), mailer: smtpMailer(port: port)
            ))
        #expect(down.failure != nil)
        #expect(try await database.count(#"SELECT count(*) FROM "ApprovalStep" WHERE "lastNudgedAt" IS NOT NULL"#) == 1)
        let smtp = try await TestSMTPServer(port: port)
        let up = try await ApprovalNudger().run(
            database.context(
                job: "n", runID: try await database.newRun("n"), mailer: smtpMailer(port: port)
            ))
        #expect(up.failure == nil)
        #expect(up.outcome["emailed"] == 7)
        #expect(try smtp.messages().count == 7)
        #expect(try await database.count(#"SELECT count(*) FROM "ApprovalStep" WHERE "lastNudgedAt" IS NOT NULL"#) == 8)
    }

    @Test("without an email provider nudges are drafts, once, and the cooldown does not start")
    func drafts() async throws {
        let database = try await ZoarkDatabase("nudgerdrafts")
        try await database.seed(Self.seed)
        let first = try await ApprovalNudger().run(
            database.context(job: "n", runID: try await database.newRun("n")))
        #expect(first.outcome["drafted"] == 7)
        let second = try await ApprovalNudger().run(
            database.context(job: "n", runID: try await database.newRun("n")))
        #expect(second.outcome["drafted"] == 0)
        #expect(try await database.count("SELECT count(*) FROM runner.effects WHERE status = 'draft'") == 7)
        #expect(try await database.count(#"SELECT count(*) FROM "ApprovalStep" WHERE "lastNudgedAt" IS NOT NULL"#) == 1)
    }

    @Test("emails rendered in parallel chunks come back in the steps' order")
    func parallelRendering() async {
        let steps = (0..<53).map { index in
            ApprovalNudger.Step(
                id: "s\(index)", stage: "FINANCE_CHECK",
                assignee: .success(EmailAddress(stringLiteral: "a\(index)@example.com")), project: "P\(index % 5)",
                amount: Double(index) * 1000.5, deadline: "2026-11-\(10 + index % 10) 09:00 UTC",
                daysOverdue: index % 12,
                requiredDocs: index % 2 == 0 ? ["Receipt"] : [], lastNudgedAt: "never")
        }
        let addressed = steps.map { step in (step: step, to: try! step.assignee.get()) }
        let sequential = addressed.map {
            ApprovalNudger.email(for: $0.step, to: $0.to, escalateTo: ["boss@example.com"])
        }
        let chunked = await ApprovalNudger.emails(for: addressed, escalateTo: ["boss@example.com"], chunk: 7)
        #expect(chunked.count == 53)
        #expect(chunked == sequential)
        #expect(chunked.map(\.to) == (0..<53).map { [EmailAddress(stringLiteral: "a\($0)@example.com")] })
    }

    @Test(
        "dollar amounts",
        arguments: [
            (25000.0, "$25,000.00"), (0.5, "$0.50"), (999.999, "$1,000.00"), (1234567.891, "$1,234,567.89"),
            (5.05, "$5.05"), (0, "$0.00"), (-1234.5, "-$1,234.50"), (100, "$100.00"),
        ])
    func dollars(amount: Double, text: String) {
        #expect(ApprovalNudger.formatDollars(amount) == text)
    }

    @Test(
        "urgency by whole days overdue",
        arguments: [
            (0, "low"), (1, "low"), (2, "medium"), (3, "medium"), (4, "high"), (7, "high"), (8, "critical"),
            (30, "critical"),
        ])
    func urgency(days: Int, level: String) {
        #expect(ApprovalNudger.Urgency(daysOverdue: days).rawValue == level)
    }

    @Test("a backlog over several pages in draft mode: each nudge drafted once; the second run renders none")
    func severalPages() async throws {
        let database = try await ZoarkDatabase("nudgerpages")
        let count = ApprovalNudger.pageSize * 2 + 500
        try await database.seed(
            """
            INSERT INTO "Project" ("id", "name", "updatedAt") VALUES ('p1', 'Apollo', NOW);
            INSERT INTO "Invoice" ("id", "projectId", "amount", "updatedAt") VALUES ('i1', 'p1', 100, NOW);
            INSERT INTO "ApprovalStep" ("id", "invoiceId", "stage", "requiredDocs", "assigneeEmail", "status", "deadline", "updatedAt")
            SELECT 's' || g, 'i1', 'FINANCE_CHECK', '{}', 'a' || g || '@example.com', 'PENDING', NOW - interval '3 days', NOW
            FROM generate_series(1, \(count)) g;
            """)
        let first = try await ApprovalNudger().run(database.context(job: "n", runID: try await database.newRun("n")))
        #expect(first.outcome["overdue"] == .number(Double(count)))
        #expect(first.outcome["drafted"] == .number(Double(count)))
        #expect(
            try await database.count("SELECT count(*) FROM runner.effects WHERE kind = 'email' AND status = 'draft'")
                == count)
        let second = try await ApprovalNudger().run(database.context(job: "n", runID: try await database.newRun("n")))
        #expect(second.outcome["drafted"] == 0)
        // Asked the ledger first: nothing was rendered again.
        #expect(first.metrics.first { $0.name == "emails_rendered" }?.value == Double(count))
        #expect(second.metrics.first { $0.name == "emails_rendered" }?.value == 0)
        #expect(try await database.count("SELECT count(*) FROM runner.effects WHERE kind = 'email'") == count)
    }
}
