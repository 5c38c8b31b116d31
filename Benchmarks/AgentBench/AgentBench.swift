import BenchmarkSupport
import Foundation
import Logging
import RunnerCore

// The ZOARK agents at scale, in draft mode (no email provider):
// - task-monitor over 1,000,000 tasks of which 10,000 are stuck;
// - approval-nudger over 100,000 overdue approval steps.
// For each: the wall time of the agent's run next to the wall time of its main query run alone
// with psql on the same data, and the time spent recording the effects (batched inserts).
//
// Run: swift run -c release agent-bench [CONNECTION-STRING]
// Default: the embedded PostgreSQL (RUNNER_HOME, else ./.runner). A fresh database is used.

@main
struct AgentBench {
    static func main() async throws {
        let server = try await BenchmarkDatabase.fromArguments()
        let (name, url, connection) = try await server.fresh("agent_bench")
        try await connection.execute(ZoarkSchema.sql)

        let clock = ContinuousClock()
        var started = clock.now
        try await connection.execute(
            """
            INSERT INTO "Project" ("id", "name", "updatedAt")
            SELECT 'p' || g, 'Project ' || g, now() FROM generate_series(1, 100) g;
            INSERT INTO "Task" ("id", "projectId", "title", "status", "lastUpdated", "updatedAt")
            SELECT 't' || g, 'p' || (g % 100 + 1), 'Task number ' || g,
                   (CASE WHEN g % 100 = 0 OR g % 3 = 0 THEN 'ACTIVE' WHEN g % 3 = 1 THEN 'DONE' ELSE 'BACKLOG' END)::"TaskStatus",
                   CASE WHEN g % 100 = 0 THEN (now() AT TIME ZONE 'UTC') - interval '3 days'
                        ELSE (now() AT TIME ZONE 'UTC') - (g % 40) * interval '1 hour' END,
                   now()
            FROM generate_series(1, 1000000) g;
            INSERT INTO "Invoice" ("id", "projectId", "amount", "updatedAt")
            SELECT 'i' || g, 'p' || (g % 100 + 1), 1000 + g * 7.5, now() FROM generate_series(1, 1000) g;
            INSERT INTO "ApprovalStep" ("id", "invoiceId", "stage", "requiredDocs", "assigneeEmail", "deadline", "updatedAt")
            SELECT 's' || g, 'i' || (g % 1000 + 1), 'FINANCE_CHECK', '{"Receipt","PO"}', 'approver' || (g % 500) || '@example.com',
                   (now() AT TIME ZONE 'UTC') - (g % 12) * interval '1 day' - interval '1 hour', now()
            FROM generate_series(1, 100000) g;
            """)
        try await connection.execute("VACUUM ANALYZE")
        print(
            String(
                format: "data: 1,000,000 tasks (10,000 stuck), 100,000 overdue steps, loaded in %.1f s",
                (clock.now - started).milliseconds / 1000))

        let psql = psqlPath()
        for (label, sql, threshold, agent, options) in [
            ("task-monitor", TaskMonitor.stuckQuery, "48 hours", Agent.task, AgentOptions()),
            ("approval-nudger", ApprovalNudger.overdueQuery, "24 hours", Agent.nudger, AgentOptions()),
        ] as [(String, String, String, Agent, AgentOptions)] {
            let literal = sql.replacingOccurrences(of: "$1::timestamptz", with: "now()")
                .replacingOccurrences(of: "$2::interval", with: "'\(threshold)'::interval")
            var psqlTimes: [Double] = []
            for _ in 0..<3 {
                started = clock.now
                try runPSQL(psql, url: url.raw, sql: literal)
                psqlTimes.append((clock.now - started).milliseconds)
            }
            let runID =
                try await connection.query(
                    """
                    INSERT INTO runner.runs (job, slot, slot_key, trigger, status, claimed_by, lease_seconds)
                    VALUES ($1, now(), $1, 'manual', 'running', 'bench', 30) RETURNING id
                    """, [PostgresValue(label)]
                ).first?.int64("id") ?? 0
            let context = AgentContext(
                runID: runID, job: label, database: connection, effects: Effects(connection: connection), mailer: nil,
                now: Date(), logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }, options: options,
                dryRun: false)
            started = clock.now
            let report = try await agent.value.run(context)
            let runMs = (clock.now - started).milliseconds
            let queryMs = report.metrics.first { $0.name == "query_ms" }?.value ?? 0
            let recordMs = report.metrics.first { $0.name == "record_ms" }?.value ?? 0
            let renderMs = report.metrics.first { $0.name == "render_ms" }?.value
            let psqlMs = psqlTimes.sorted()[1]
            print("\(label): \(JSONValue.object(report.outcome).text)")
            benchmarkCheck(report.failure == nil, "\(label) failed: \(report.failure ?? "")")
            let found = report.outcome["stuck"] ?? report.outcome["overdue"]
            let expectedDrafts: JSONValue = agent == .task ? 1 : (found ?? 0)
            benchmarkCheck(
                found != nil && found != 0 && report.outcome["drafted"] == expectedDrafts,
                "\(label) drafted \(report.outcome["drafted"]?.text ?? "nothing") of \(found?.text ?? "none") found")
            print(String(format: "  psql, main query alone (median of 3): %8.0f ms", psqlMs))
            print(
                String(format: "  agent run, wall time:                 %8.0f ms  (%.2fx psql)", runMs, runMs / psqlMs))
            print(String(format: "    of which the query in the agent:    %8.0f ms", queryMs))
            if let renderMs {
                print(String(format: "    of which rendering the emails:      %8.0f ms", renderMs))
            }
            print(String(format: "    of which recording the effects:     %8.0f ms  (batched inserts)", recordMs))
            print(
                String(
                    format: "  run minus effects' inserts:           %8.0f ms  (%.2fx psql; goal at most 2x)",
                    runMs - recordMs, (runMs - recordMs) / psqlMs))
        }
        await connection.close()
        try await server.drop(name)
    }

    enum Agent {
        case task, nudger
        var value: RunnerCore.Agent { self == .task ? TaskMonitor() : ApprovalNudger() }
    }

    static func psqlPath() -> String {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        if let newest = versions.compactMap(Int.init).max() { return "/usr/lib/postgresql/\(newest)/bin/psql" }
        return "/usr/bin/psql"
    }

    static func runPSQL(_ psql: String, url: String, sql: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: psql)
        process.arguments = [url, "-X", "-q", "-c", sql, "-o", "/dev/null"]
        try process.run()
        process.waitUntilExit()
    }
}
