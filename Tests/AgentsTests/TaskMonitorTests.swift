import Foundation
import Testing

@testable import Engine
@testable import EmbeddedPostgres
@testable import Ledger
@testable import ZOARK
import TestSupport

@Suite("Task monitor")
struct TaskMonitorTests {
    static let seed = Seeds.taskMonitor

    @Test("finds ACTIVE tasks older than stuck_after and alerts each stuck episode once")
    func oncePerEpisode() async throws {
        let database = try await ZoarkDatabase("taskmonitor")
        try await database.seed(Self.seed)
        let smtp = try await TestSMTPServer()
        let options = TaskMonitor.Options(alertTo: ["ops@example.com"])
        let mailer = smtpMailer(port: smtp.port)

        let first = try await TaskMonitor(options: options).run(
            database.context(
                job: "stuck-tasks", runID: try await database.newRun("stuck-tasks"), mailer: mailer))
        #expect(first.outcome["stuck"] == 2)
        #expect(first.outcome["newly_stuck"] == 2)
        #expect(first.outcome["emailed"] == 1)
        #expect(first.failure == nil)
        let messages = try smtp.messages()
        #expect(messages.count == 1)
        let message = try #require(messages.first)
        #expect(message.contains("X-Envelope-To: ops@example.com"))
        #expect(message.contains("Subject: [ZOARK] 2 tasks stuck (no update for 2d or more)"))
        let (text, html) = decodedParts(message)
        #expect(text.contains("- Write the spec (project Apollo, ACTIVE): stuck 2 days"))
        #expect(text.contains("stuck 10 days"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"))
        #expect(!html.contains("<script>"))
        #expect(html.contains("Borealis &amp; Co"))

        for _ in 0..<3 {
            let again = try await TaskMonitor(options: options).run(
                database.context(
                    job: "stuck-tasks", runID: try await database.newRun("stuck-tasks"), mailer: mailer))
            #expect(again.outcome["stuck"] == 2)
            #expect(again.outcome["newly_stuck"] == 0)
            #expect(again.outcome["emailed"] == 0)
        }
        #expect(try smtp.messages().count == 1)

        // Someone touches the task; it goes stale again: a new episode, a new alert.
        try await database.seed(
            #"UPDATE "Task" SET "lastUpdated" = NOW - interval '3 days 1 hour' WHERE "id" = 't-49h'"#)
        let newEpisode = try await TaskMonitor(options: options).run(
            database.context(
                job: "stuck-tasks", runID: try await database.newRun("stuck-tasks"), mailer: mailer))
        #expect(newEpisode.outcome["newly_stuck"] == 1)
        #expect(try smtp.messages().count == 2)
        #expect(try smtp.messages().last?.contains("Subject: [ZOARK] 1 task stuck") == true)
        // The agent writes no activity row itself: the runner does, after it (AgentCommandTests).
        #expect(try await database.count(#"SELECT count(*) FROM "AgentLog""#) == 0)
    }

    @Test("with realert_after a still-stuck task is alerted again once per period")
    func realert() async throws {
        let database = try await ZoarkDatabase("taskmonitorrealert")
        try await database.seed(Self.seed)
        // Without the 47-hour task, which would cross the threshold during the test.
        try await database.seed(#"DELETE FROM "Task" WHERE "id" = 't-47h'"#)
        let options = TaskMonitor.Options(realertAfter: .seconds(86_400))
        func run(at now: Date) async throws -> AgentReport {
            try await TaskMonitor(options: options).run(
                database.context(
                    job: "stuck-tasks", runID: try await database.newRun("stuck-tasks"), now: now))
        }
        let now = Date()
        #expect(try await run(at: now).outcome["newly_stuck"] == 2)
        #expect(try await run(at: now.addingTimeInterval(3600)).outcome["newly_stuck"] == 0)
        // A day later both tasks are still stuck: a new period, a new alert for each.
        #expect(try await run(at: now.addingTimeInterval(86_400 + 60)).outcome["newly_stuck"] == 2)
        #expect(try await run(at: now.addingTimeInterval(86_400 + 3600)).outcome["newly_stuck"] == 0)
        #expect(try await database.count("SELECT count(*) FROM runner.effects WHERE kind = 'email'") == 2)
    }

    @Test("without a recipient the digest is kept as a draft, and a dry run records nothing")
    func draftsAndDryRun() async throws {
        let database = try await ZoarkDatabase("taskmonitordraft")
        try await database.seed(Self.seed)
        let dry = try await TaskMonitor().run(
            database.context(
                job: "stuck-tasks", runID: try await database.newRun("stuck-tasks"),
                dryRun: true))
        #expect(dry.outcome["would_alert"] == 2)
        #expect(try await database.count("SELECT count(*) FROM runner.effects") == 0)

        let report = try await TaskMonitor().run(
            database.context(
                job: "stuck-tasks", runID: try await database.newRun("stuck-tasks"),
                mailer: smtpMailer(port: 1)))
        #expect(report.outcome["drafted"] == 1)
        #expect(report.outcome["emailed"] == 0)
        let draft = try await database.connection.query(
            "SELECT status, payload->>'subject' AS subject FROM runner.effects WHERE kind = 'email'")
        #expect(try draft.first?.string("status") == "draft")
        #expect(try draft.first?.string("subject") == "[ZOARK] 2 tasks stuck (no update for 2d or more)")
        #expect(
            try await database.count(
                "SELECT count(*) FROM runner.effects WHERE kind = 'task-monitor.alert' AND status = 'draft'") == 2)
    }

    @Test("when the SMTP server is down the digest stays pending, the run fails, and the next run sends it")
    func smtpDown() async throws {
        let database = try await ZoarkDatabase("taskmonitordown")
        try await database.seed(Self.seed)
        let port = try EmbeddedPostgres.freePort()
        let options = TaskMonitor.Options(alertTo: ["ops@example.com"])
        let down = try await TaskMonitor(options: options).run(
            database.context(
                job: "stuck-tasks", runID: try await database.newRun("stuck-tasks"), mailer: smtpMailer(port: port)))
        #expect(down.failure?.contains("left pending for the next run") == true)
        #expect(
            try await database.count("SELECT count(*) FROM runner.effects WHERE kind = 'email' AND status = 'pending'")
                == 1)

        let smtp = try await TestSMTPServer(port: port)
        let up = try await TaskMonitor(options: options).run(
            database.context(
                job: "stuck-tasks", runID: try await database.newRun("stuck-tasks"), mailer: smtpMailer(port: port)))
        #expect(up.failure == nil)
        #expect(up.outcome["newly_stuck"] == 0)
        #expect(up.outcome["emailed"] == 1)
        #expect(try smtp.messages().count == 1)
        #expect(
            try await database.count("SELECT count(*) FROM runner.effects WHERE kind = 'email' AND status = 'sent'")
                == 1)
    }

    @Test("a transient 451 is retried within the run; a 550 is recorded as failed")
    func transientAndPermanent() async throws {
        let database = try await ZoarkDatabase("taskmonitorsmtp")
        try await database.seed(Self.seed)
        let options = TaskMonitor.Options(alertTo: ["ops@example.com"])
        let flaky = try await TestSMTPServer(failFirst: 1)
        let retried = try await TaskMonitor(options: options).run(
            database.context(
                job: "a", runID: try await database.newRun("a"), mailer: smtpMailer(port: flaky.port))
        )
        #expect(retried.outcome["emailed"] == 1)
        #expect(try flaky.messages().count == 1)

        let rejecting = try await TestSMTPServer(reject: true)
        let rejected = try await TaskMonitor(options: options).run(
            database.context(
                job: "b", runID: try await database.newRun("b"), mailer: smtpMailer(port: rejecting.port)))
        #expect(rejected.outcome["email_failed"] == 1)
        let failed = try await database.connection.query(
            "SELECT status, last_error FROM runner.effects WHERE kind = 'email' AND key LIKE 'b:%'")
        #expect(try failed.first?.string("status") == "failed")
        #expect(try failed.first?.string("last_error")?.contains("550") == true)
    }

    @Test("a backlog over several pages: every episode claimed once, one digest listing the oldest 200")
    func severalPages() async throws {
        let database = try await ZoarkDatabase("taskmonitorpages")
        let count = TaskMonitor.pageSize * 2 + 300
        try await database.seed(
            """
            INSERT INTO "Project" ("id", "name", "updatedAt") VALUES ('p1', 'Apollo', NOW);
            INSERT INTO "Task" ("id", "projectId", "title", "status", "lastUpdated", "updatedAt")
            SELECT 't' || lpad(g::text, 5, '0'), 'p1', 'Task ' || g, 'ACTIVE', NOW - interval '3 days' - g * interval '1 second', NOW
            FROM generate_series(1, \(count)) g;
            """)
        let smtp = try await TestSMTPServer()
        let monitor = TaskMonitor(options: .init(alertTo: ["ops@example.com"]))
        let first = try await monitor.run(
            database.context(job: "st", runID: try await database.newRun("st"), mailer: smtpMailer(port: smtp.port)))
        #expect(first.outcome["stuck"] == .number(Double(count)))
        #expect(first.outcome["newly_stuck"] == .number(Double(count)))
        #expect(first.outcome["emailed"] == 1)
        #expect(
            try await database.count(
                "SELECT count(*) FROM runner.effects WHERE kind = 'task-monitor.alert' AND status = 'sent'") == count)
        let (text, _) = decodedParts(try #require(try smtp.messages().first))
        #expect(text.components(separatedBy: "\n").filter { $0.hasPrefix("- Task ") }.count == 200)
        // The oldest first, across pages: task N is the oldest.
        #expect(text.contains("- Task \(count) "))
        #expect(text.contains("…and \(count - 200) more stuck tasks"))
        let again = try await monitor.run(
            database.context(job: "st", runID: try await database.newRun("st"), mailer: smtpMailer(port: smtp.port)))
        #expect(again.outcome["newly_stuck"] == 0)
        #expect(try smtp.messages().count == 1)
    }
}
