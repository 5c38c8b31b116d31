import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import ZOARK
import TestSupport

@Suite("Timesheet drafter")
struct TimesheetDrafterTests {
    static let seed = """
        INSERT INTO "Project" ("id", "name", "updatedAt") VALUES ('p1', 'Apollo', NOW), ('p2', 'Zephyr', NOW);
        INSERT INTO "User" ("id", "name", "email", "timesheetStatus", "githubUsername", "updatedAt") VALUES
            ('u1', 'Ada', 'ada@example.com', 'pending', 'octo', NOW),
            ('u2', 'Bob <b>', 'bob@example.com', 'draft', 'broken', NOW),
            ('u3', 'Cy', 'cy@example.com', 'completed', NULL, NOW),
            ('u4', 'Di', 'di@example.com', 'pending', NULL, NOW);
        INSERT INTO "TeamMember" ("id", "name", "email", "updatedAt") VALUES ('m1', 'Ada', 'ADA@example.com', NOW);
        INSERT INTO "Task" ("id", "projectId", "title", "status", "lastUpdated", "updatedAt") VALUES
            ('t1', 'p1', 'Ship the API', 'DONE', NOW - interval '2 days', NOW),
            ('t2', 'p1', 'Old work', 'DONE', NOW - interval '9 days', NOW),
            ('t3', 'p2', 'Still going', 'ACTIVE', NOW - interval '1 day', NOW),
            ('t4', 'p2', 'Zephyr <launch>', 'DONE', NOW - interval '1 day', NOW);
        INSERT INTO "TaskAssignment" ("id", "taskId", "teamMemberId") VALUES ('a1', 't1', 'm1'), ('a2', 't2', 'm1');
        INSERT INTO "_ProjectToUser" ("A", "B") VALUES ('p2', 'u4'), ('p2', 'u1');
        """

    static func github(now: Date) -> JSONValue {
        let recent = InstantFormat.string(now.addingTimeInterval(-86_400), in: TimeZone(identifier: "UTC")!)
        let old = InstantFormat.string(now.addingTimeInterval(-10 * 86_400), in: TimeZone(identifier: "UTC")!)
        return [
            "GET /users/octo/events": [
                "status": 200,
                "body": [
                    [
                        "type": "PushEvent", "created_at": .string(recent), "repo": ["name": "acme/api"],
                        "payload": ["size": 3],
                    ],
                    [
                        "type": "PushEvent", "created_at": .string(recent), "repo": ["name": "acme/web"],
                        "payload": ["commits": [["sha": "a"], ["sha": "b"]]],
                    ],
                    ["type": "PushEvent", "created_at": .string(recent), "repo": ["name": "acme/api"], "payload": [:]],
                    ["type": "WatchEvent", "created_at": .string(recent), "repo": ["name": "other/repo"]],
                    [
                        "type": "PushEvent", "created_at": .string(old), "repo": ["name": "acme/old"],
                        "payload": ["size": 9],
                    ],
                ],
            ],
            "GET /users/broken/events": ["status": 500, "body": ["message": "boom"]],
        ]
    }

    @Test("one reminder per user per ISO week, with finished tasks and GitHub activity")
    func reminders() async throws {
        let database = try await ZoarkDatabase("timesheet")
        try await database.seed(Self.seed)
        let now = Date()
        let github = try await TestHTTPServer(routes: Self.github(now: now))
        let smtp = try await TestSMTPServer()
        func context() async throws -> AgentContext {
            database.context(
                job: "timesheet-reminders", runID: try await database.newRun("t"),
                mailer: smtpMailer(port: smtp.port), now: now,
                environment: ["GITHUB_API_URL": github.baseURL, "GITHUB_TOKEN": "ghp_test_token"])
        }
        let report = try await TimesheetDrafter().run(try await context())
        #expect(report.outcome["users"] == 3)
        #expect(report.outcome["emailed"] == 3)
        #expect(report.outcome["github_unavailable"] == 1)
        let messages = try smtp.messages()
        #expect(messages.count == 3)
        let week = TimesheetDrafter.isoWeek(now)
        let ada = decodedParts(try #require(messages.first { $0.contains("X-Envelope-To: ada@example.com") }))
        #expect(ada.text.contains("- Ship the API (Apollo)"))
        #expect(!ada.text.contains("Old work"))
        #expect(!ada.text.contains("Zephyr"))  // Ada is a team member: her assignments count, not her projects
        #expect(ada.text.contains("GitHub this week: 3 pushes, 5 commits; repositories: acme/api, acme/web"))
        let bob = decodedParts(try #require(messages.first { $0.contains("X-Envelope-To: bob@example.com") }))
        #expect(bob.text.contains("No GitHub activity available."))
        #expect(bob.html.contains("Bob &lt;b&gt;"))
        let di = decodedParts(try #require(messages.first { $0.contains("X-Envelope-To: di@example.com") }))
        #expect(di.text.contains("- Zephyr <launch> (Zephyr)"))
        #expect(di.html.contains("Zephyr &lt;launch&gt;"))
        #expect(
            messages.allSatisfy {
                $0.contains("Subject: Timesheet reminder: please complete your timesheet for \(week)")
            })

        let requests = try github.requests()
        #expect(requests.count == 2)
        #expect(requests.allSatisfy { $0["headers"]?["Authorization"] == "Bearer ghp_test_token" })
        #expect(requests.allSatisfy { $0["headers"]?["Accept"] == "application/vnd.github+json" })

        let again = try await TimesheetDrafter().run(try await context())
        #expect(again.outcome["emailed"] == 0)
        #expect(try smtp.messages().count == 3)
        // The ledger is asked first: every reminder of the week is recorded, so GitHub is not asked again.
        #expect(try github.requests().count == 2)
    }

    @Test(
        "ISO weeks",
        arguments: [
            ("2026-11-22T12:00:00Z", "2026-W47"), ("2027-01-01T00:00:00Z", "2026-W53"),
            ("2026-01-01T00:00:00Z", "2026-W01"),
            ("2024-12-30T00:00:00Z", "2025-W01"),
        ])
    func isoWeeks(instant: String, week: String) {
        #expect(TimesheetDrafter.isoWeek(InstantFormat.parse(instant)!) == week)
    }
}
