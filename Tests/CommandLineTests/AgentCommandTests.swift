import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import ZOARK
import TestSupport

/// The ZOARK agents run by `runner once`, as platform cron would, against a real SMTP server.
@Suite("Agents through runner once")
struct AgentCommandTests {
    static let jobs = """
        jobs:
          approval-nudges:
            agent: approval-nudger
            schedule: "0 * * * *"
          stuck-tasks:
            agent: task-monitor
            schedule: "*/30 * * * *"
            with: {alert_to: "ops@example.com"}
        """

    static func setup(_ label: String, smtp: TestSMTPServer, connections: Int = 4) async throws -> CLISetup {
        let setup = try await CLISetup(
            label, jobs: jobs,
            extraEnvironment: smtp.environment.merging(["EMAIL_MAX_CONNECTIONS": String(connections)]) { $1 })
        try await setup.connection.execute(ZoarkSchema.sql)
        try await setup.connection.execute(
            Seeds.approvalNudger.replacingOccurrences(of: "NOW", with: "(now() AT TIME ZONE 'UTC')"))
        return setup
    }

    static func recipients(_ smtp: TestSMTPServer) throws -> [String] {
        try smtp.messages().compactMap { message in
            message.split(separator: "\r\n").first { $0.hasPrefix("X-Envelope-To: ") }.map { String($0.dropFirst(15)) }
        }
    }

    @Test("eight concurrent runner once of the nudger send each nudge exactly once")
    func eightConcurrentNudgers() async throws {
        let smtp = try await TestSMTPServer()
        let setup = try await Self.setup("nudgereight", smtp: smtp)
        let results = try await withThrowingTaskGroup(of: RunnerProcess.Result.self) { group in
            for index in 0..<8 {
                // Half as scheduled runs of the same slot, half forced manual runs racing them.
                group.addTask {
                    index % 2 == 0
                        ? try await setup.runner("once", "approval-nudges")
                        : try await setup.runner("once", "approval-nudges", "--force")
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
        let recipients = try Self.recipients(smtp)
        #expect(recipients.count == 7)
        #expect(Set(recipients).count == 7)
        #expect(try await setup.count("SELECT count(*) FROM runner.effects WHERE status = 'sent'") == 7)
        // One activity row per run that ran (one scheduled run won the slot; four forced runs),
        // written by the runner after the agent, with the run's outcome.
        let ran = try await setup.count("SELECT count(*) FROM runner.runs WHERE status = 'succeeded'")
        #expect(ran == 5)
        #expect(
            try await setup.count(
                #"SELECT count(*) FROM "AgentLog" WHERE "action" = 'APPROVAL_NUDGE' AND "status" = 'SUCCESS' AND "context" ? 'overdue'"#
            )
                == ran)
    }

    @Test("a nudger killed with SIGKILL mid-send, run again, sends each email at most once")
    func killedMidSend() async throws {
        // Two emails go through; the third hangs in the server, and the runner is killed then.
        let slow = try await TestSMTPServer(hangAt: 3)
        // One connection: the server holds the third message and nothing else is in flight.
        let setup = try await Self.setup("nudgerkill", smtp: slow, connections: 1)
        let process = try RunnerProcess.launch(["once", "approval-nudges"], environment: setup.environment)
        // Killed while the server holds the third message: no sleep decides when.
        try await slow.waitUntilHolding()
        kill(process.processIdentifier, SIGKILL)
        try await offPool { process.waitUntilExit() }
        let beforeRerun = try Self.recipients(slow).count
        #expect(beforeRerun == 2)

        // The killed run's lease runs out; a forced run (the slot is taken) finishes the rest.
        try await setup.connection.execute(
            "UPDATE runner.effects SET leased_until = now() - interval '1 second' WHERE leased_until IS NOT NULL")
        try await setup.connection.execute(
            "UPDATE runner.runs SET heartbeat_at = now() - interval '1 hour' WHERE status = 'running'")
        let rerun = try await setup.runner("once", "approval-nudges", "--force")
        slow.release()  // the held send goes on on the server side, its client long gone
        try await Task.sleep(for: .milliseconds(500))
        let recipients = try Self.recipients(slow)
        #expect(Set(recipients).count == recipients.count, "duplicates: \(recipients.sorted())")
        let unknown = try await setup.count(
            "SELECT count(*) FROM runner.effects WHERE status = 'unknown' AND last_error LIKE 'outcome unknown%'")
        let sent = try await setup.count("SELECT count(*) FROM runner.effects WHERE status = 'sent'")
        // Every nudge was either sent once or, if it was the one in flight, left alone: never twice.
        #expect(sent + unknown == 7)
        #expect(unknown == 1)
        // The hung send died with its connection: six arrived, each once, and the seventh is
        // recorded as unknown rather than risked twice.
        #expect(recipients.count == 6)
        #expect(try await setup.count("SELECT count(*) FROM runner.runs WHERE status = 'abandoned'") == 1)
        #expect(rerun.stdout.contains("run "), "\(rerun.stderr)")
    }

    @Test("a nudger sending on 4 SMTP connections, killed with SIGKILL mid-page: each email at most once")
    func killedMidPageOnFourConnections() async throws {
        // The server holds the 40th message; the other connections go on until the kill.
        let slow = try await TestSMTPServer(hangAt: 40)
        let setup = try await CLISetup(
            "nudgerkillfour",
            jobs: """
                jobs:
                  nudges:
                    agent: approval-nudger
                    schedule: "0 * * * *"
                """, extraEnvironment: slow.environment.merging(["EMAIL_MAX_CONNECTIONS": "4"]) { $1 })
        try await setup.connection.execute(ZoarkSchema.sql)
        try await setup.connection.execute(
            """
            INSERT INTO "Project" ("id", "name", "updatedAt") VALUES ('p1', 'Apollo', now());
            INSERT INTO "Invoice" ("id", "projectId", "amount", "updatedAt") VALUES ('i1', 'p1', 100, now());
            INSERT INTO "ApprovalStep" ("id", "invoiceId", "stage", "requiredDocs", "assigneeEmail", "status", "deadline", "updatedAt")
            SELECT 's' || lpad(g::text, 3, '0'), 'i1', 'FINANCE_CHECK', '{}', 'a' || g || '@example.com', 'PENDING',
                   (now() AT TIME ZONE 'UTC') - interval '3 days', now()
            FROM generate_series(1, 300) g;
            """)
        let process = try RunnerProcess.launch(["once", "nudges"], environment: setup.environment)
        try await slow.waitUntilHolding()
        kill(process.processIdentifier, SIGKILL)
        try await offPool { process.waitUntilExit() }
        let beforeRerun = try Self.recipients(slow)
        #expect(beforeRerun.count >= 39, "the other connections stopped when one was held")

        try await setup.connection.execute(
            "UPDATE runner.effects SET leased_until = now() - interval '1 second' WHERE leased_until IS NOT NULL")
        try await setup.connection.execute(
            "UPDATE runner.runs SET heartbeat_at = now() - interval '1 hour' WHERE status = 'running'")
        let rerun = try await setup.runner("once", "nudges", "--force")
        slow.release()
        try await Task.sleep(for: .milliseconds(500))
        let recipients = try Self.recipients(slow)
        #expect(Set(recipients).count == recipients.count, "duplicates: \(recipients.count - Set(recipients).count)")
        let unknown = try await setup.count("SELECT count(*) FROM runner.effects WHERE status = 'unknown'")
        let sent = try await setup.count("SELECT count(*) FROM runner.effects WHERE status = 'sent'")
        // Each nudge was sent once, or was in flight at the kill and is left for a person.
        #expect(sent + unknown == 300, "\(rerun.stdout) \(rerun.stderr)")
        #expect((1...4).contains(unknown))
        #expect(sent <= recipients.count && recipients.count <= sent + unknown)
    }

    @Test(
        "row 9: a renamed job sends nothing again, and keys an earlier version wrote under the job's name are adopted")
    func renameSendsNothingAgain() async throws {
        let smtp = try await TestSMTPServer()
        let setup = try await CLISetup("renamed", jobs: Self.jobs, extraEnvironment: smtp.environment)
        try await setup.connection.execute(ZoarkSchema.sql)
        try await setup.connection.execute(
            Seeds.taskMonitor.replacingOccurrences(of: "NOW", with: "(now() AT TIME ZONE 'UTC')"))
        func table(_ name: String) -> String {
            """
            jobs:
              \(name):
                agent: task-monitor
                schedule: "*/30 * * * *"
                with: {alert_to: "ops@example.com"}
            """
        }
        let first = try await setup.runner("once", "stuck-tasks", "--force")
        #expect(first.status == 0, "\(first.stdout) \(first.stderr)")
        #expect(try Self.recipients(smtp) == ["ops@example.com"], "one digest of the stuck tasks")
        let alerts = try await setup.count("SELECT count(*) FROM runner.effects WHERE kind = 'task-monitor.alert'")
        #expect(alerts == 2)

        // Renamed in jobs.yaml: the same agent on the same database finds its alerts.
        _ = try setup.directory.write("jobs.yaml", table("stuck-alerts"))
        let renamed = try await setup.runner("once", "stuck-alerts", "--force")
        #expect(renamed.status == 0, "\(renamed.stdout) \(renamed.stderr)")
        #expect(try Self.recipients(smtp).count == 1, "the renamed job alerted again")
        #expect(
            try await setup.count("SELECT count(*) FROM runner.effects WHERE kind = 'task-monitor.alert'") == alerts)

        // As an earlier version left them: every key starts with the job's name, nothing adopted.
        try await setup.connection.execute(
            """
            UPDATE runner.effects SET key = 'legacy-job:' || substr(key, strpos(key, ':') + 1);
            DELETE FROM runner.effect_scopes;
            """)
        _ = try setup.directory.write("jobs.yaml", table("legacy-job"))
        let upgraded = try await setup.runner("once", "legacy-job", "--force")
        #expect(upgraded.status == 0, "\(upgraded.stdout) \(upgraded.stderr)")
        #expect(try Self.recipients(smtp).count == 1, "the upgrade alerted again")
        #expect(upgraded.stderr.contains("effect keys moved from the job's name to its scope"))
        let keys = try await setup.connection.query("SELECT key FROM runner.effects ORDER BY key").map {
            try $0.string("key") ?? ""
        }
        #expect(keys.allSatisfy { $0.hasPrefix("task-monitor@") }, "\(keys)")
        #expect(try await setup.count("SELECT count(*) FROM runner.effect_scopes WHERE job = 'legacy-job'") == 1)

        // Two jobs of one agent kept apart on purpose: a scope of its own alerts afresh.
        _ = try setup.directory.write(
            "jobs.yaml", table("second-team") + "\n    effects_scope: second-team")
        let apart = try await setup.runner("once", "second-team", "--force")
        #expect(apart.status == 0, "\(apart.stdout) \(apart.stderr)")
        #expect(try Self.recipients(smtp).count == 2)
    }
}
