import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Demo
import TestSupport

@Suite("runner demo, outbox and preview")
struct DemoCommandTests {
    @Test("demo runs every agent on sample data, twice, and the second time sends and writes nothing new")
    func demoTwice() async throws {
        let directory = try TemporaryDirectory()
        var environment = ProcessInfo.processInfo.environment
        environment["RUNNER_HOME"] = directory.url.appendingPathComponent("home").path
        environment["DATABASE_URL"] = "postgres://must-not-be-used@127.0.0.1:1/nope"
        environment.removeValue(forKey: "EMAIL_PROVIDER")
        func runner(_ arguments: String...) async throws -> RunnerProcess.Result {
            try await RunnerProcess.run(arguments, environment: environment, currentDirectory: directory.url)
        }
        // Stopped whether the test passed or threw, awaited: an async defer.
        try await withCleanup {
            let first = try await runner("demo")
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("stuck-tasks: run 1 succeeded"))
            #expect(first.stdout.contains(#""newly_stuck":5"#))
            #expect(first.stdout.contains(#""drafted":4"#))  // the nudges of four overdue steps
            #expect(first.stdout.contains("== history (runner history) =="))
            #expect(
                first.stdout.contains(
                    "[CRITICAL — Immediate Action Required] Approval Pending — EXECUTIVE_APPROVAL ($312,000.00)"))
            #expect(first.stdout.components(separatedBy: "  draft  ").count - 1 == 8)

            let second = try await runner("demo")
            #expect(second.status == 0)
            #expect(
                second.stdout.contains(
                    #"stuck-tasks: run 5 succeeded {"drafted":0,"emailed":0,"newly_stuck":0,"stuck":5}"#)
            )
            #expect(first.stdout.contains(#""deals_scanned":200"#))  // 300 deals, of which 100 won or lost
            #expect(second.stdout.contains(#""insights_created":0"#))
            #expect(second.stdout.contains(#""drafted":0"#))
            #expect(second.stdout.components(separatedBy: "  draft  ").count - 1 == 8)

            environment["DATABASE_URL"] = ""
            let drafts = try await runner("outbox", "--status", "draft", "--json")
            guard case .array(let items)? = JSONValue.parse(drafts.stdout) else {
                Issue.record("outbox --json printed \(drafts.stdout)")
                return
            }
            #expect(items.count == 8)
            // The demo's closing hint works as printed: one draft read whole, as text and as HTML.
            #expect(first.stdout.contains("Read an email with\n`runner outbox show ID` (add --html for its HTML)"))
            let nudge = try #require(
                items.first { $0["subject"]?.stringValue?.hasPrefix("[CRITICAL") == true }, "\(items)")
            guard case .number(let id)? = nudge["id"], let text = nudge["text"]?.stringValue,
                let body = nudge["html"]?.stringValue
            else {
                Issue.record("outbox --json carries no id, text or html: \(nudge)")
                return
            }
            let shown = try await runner("outbox", "show", String(Int(id)))
            #expect(shown.status == 0, "\(shown.stderr)")
            #expect(shown.stdout.hasPrefix("To: "), "\(shown.stdout)")
            #expect(shown.stdout.contains("\nSubject: \(nudge["subject"]?.stringValue ?? "")\nStatus: draft\n"))
            #expect(shown.stdout.hasSuffix("\n\n" + text + "\n"), "\(shown.stdout)")
            #expect(text.contains("Required documents"))
            let shownHTML = try await runner("outbox", "show", String(Int(id)), "--html")
            #expect(shownHTML.stdout.hasSuffix("\n\n" + body + "\n") && body.contains("<html"), "\(shownHTML.stdout)")
            let unknown = try await runner("outbox", "show", "999999")
            #expect(
                unknown.status == 2 && unknown.stderr.hasPrefix("error: there is no email 999999 in the outbox\nhint: ")
            )
            #expect(try await runner("outbox", "--status", "failed").stdout == "the outbox is empty (status failed)\n")

            // Preview renders without recording: a newly overdue step shows up, and stays unrecorded.
            let config = try directory.write("jobs.yaml", DemoData.jobs)
            let url = try await runner("db", "url").stdout.trimmingCharacters(in: .newlines)
            let connection = try await PostgresConnection.connect(ConnectionString(url))
            try await connection.execute(
                """
                INSERT INTO "ApprovalStep" ("id", "invoiceId", "stage", "requiredDocs", "assigneeEmail", "deadline", "updatedAt")
                VALUES ('late', 'demo-i3', 'LEGAL_REVIEW', '{"NDA"}', 'new@zoark.example',
                        (now() AT TIME ZONE 'UTC') - interval '8 days 1 hour', now())
                """)
            let effectsBefore = try await connection.query("SELECT count(*) AS n FROM runner.effects").first?.int("n")
            let preview = try await runner("preview", "approval-nudges", "--config", config.path)
            #expect(preview.status == 0, "\(preview.stderr)")
            #expect(
                preview.stdout.hasPrefix(
                    "To: new@zoark.example\nCc: cfo@zoark.example\nSubject: [CRITICAL — Immediate Action Required] Approval Pending — LEGAL_REVIEW ($7,800.00)"
                ))
            #expect(preview.stdout.contains("Required documents: NDA"))
            let html = try await runner("preview", "approval-nudges", "--config", config.path, "--html")
            #expect(html.stdout.contains("<li>NDA</li>"))
            #expect(
                try await connection.query("SELECT count(*) AS n FROM runner.effects").first?.int("n") == effectsBefore)
            let user = try await runner("preview", "timesheet-reminders", "--config", config.path, "--user", "demo-u2")
            #expect(user.stdout == "timesheet-reminders would send no email now\n")
            await connection.close()
        } cleanup: {
            environment["DATABASE_URL"] = nil
            _ = try? await RunnerProcess.run(["db", "stop"], environment: environment, currentDirectory: directory.url)
        }
    }
}
