import BenchmarkSupport
import Foundation
import Glibc
import JobTable
import Ledger
import Logging
import PostgresClient
import Engine
import RunnerSupport
import ZOARK

// The ZOARK agents at scale, in draft mode (no email provider), each run in a process of its
// own so that its peak RSS (getrusage) is its alone:
// - task-monitor over 1,000,000 tasks of which 10,000 are stuck;
// - approval-nudger over 100,000 overdue approval steps, then over 1,000,000; each twice: the
//   first run records every nudge as a draft, the second finds them all recorded.
// For each: wall time, peak RSS, and the agent's main query run alone with psql on the same data.
//
// Run: swift run -c release agent-bench [CONNECTION-STRING]
// Default: the embedded PostgreSQL (RUNNER_HOME, else ./.runner). A fresh database is used.

@main
struct AgentBench {
    static func main() async throws {
        if CommandLine.arguments.count == 4, CommandLine.arguments[1] == "--child" {
            try await child(agent: CommandLine.arguments[2], url: ConnectionString(CommandLine.arguments[3]))
            return
        }
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
            """)
        try await loadSteps(100_000, on: connection)
        print(
            String(
                format: "data: 1,000,000 tasks (10,000 stuck), 100,000 overdue steps, loaded in %.1f s",
                (clock.now - started).milliseconds / 1000))

        let psql = psqlPath()
        func psqlMedian(_ sql: String, threshold: String) throws -> Double {
            let literal = sql.replacingOccurrences(of: "$1::timestamptz", with: "now()")
                .replacingOccurrences(of: "$2::interval", with: "'\(threshold)'::interval")
            var times: [Double] = []
            for _ in 0..<3 {
                started = clock.now
                try runPSQL(psql, url: url.raw, sql: literal)
                times.append((clock.now - started).milliseconds)
            }
            return times.sorted()[1]
        }

        print(
            String(
                format: "  psql, stuck query alone (median of 3):        %8.0f ms",
                try psqlMedian(TaskMonitor.stuckQuery, threshold: "48 hours")))
        let monitor = try runChild("task-monitor", url: url)
        report("task-monitor, 1,000,000 tasks", monitor)
        benchmarkCheck(
            monitor.outcome["stuck"] == 10_000,
            "task-monitor found \(monitor.outcome["stuck"]?.text ?? "none") stuck, not 10000")
        benchmarkCheck(monitor.outcome["drafted"] == 1, "task-monitor drafted no digest")

        // AGENT_BENCH_MAX_STEPS=100000 stops after the smaller size (for profiling).
        let largest = ProcessInfo.processInfo.environment["AGENT_BENCH_MAX_STEPS"].flatMap(Int.init) ?? 1_000_000
        for steps in [100_000, 1_000_000] where steps <= largest {
            if steps != 100_000 {
                started = clock.now
                try await connection.execute(
                    #"DELETE FROM "ApprovalStep"; DELETE FROM runner.effects WHERE key LIKE 'approval-nudger:%'"#)
                try await loadSteps(steps, on: connection)
                print(
                    String(
                        format: "data: %d overdue steps, loaded in %.1f s", steps,
                        (clock.now - started).milliseconds / 1000))
            }
            print(
                String(
                    format: "  psql, overdue query alone (median of 3):      %8.0f ms",
                    try psqlMedian(ApprovalNudger.overdueQuery, threshold: "24 hours")))
            let first = try runChild("approval-nudger", url: url)
            report("approval-nudger, \(steps) overdue steps, first run", first)
            benchmarkCheck(
                first.outcome["overdue"] == .number(Double(steps))
                    && first.outcome["drafted"] == .number(Double(steps)),
                "the first run drafted \(first.outcome["drafted"]?.text ?? "nothing") of \(steps)")
            let second = try runChild("approval-nudger", url: url)
            report("approval-nudger, \(steps) overdue steps, second run (all recorded)", second)
            benchmarkCheck(
                second.outcome["overdue"] == .number(Double(steps)) && second.outcome["drafted"] == 0,
                "the second run drafted \(second.outcome["drafted"]?.text ?? "nothing") again")
            let drafts =
                try await connection.query(
                    "SELECT count(*) AS n FROM runner.effects WHERE key LIKE 'approval-nudger:%'"
                )
                .first?.int("n") ?? -1
            benchmarkCheck(drafts == steps, "the ledger holds \(drafts) drafts, not \(steps)")
        }
        print("goals: peak RSS at most 64 MB for every run; nudger first run over 100k at most 3 s, second at most 1 s")
        await connection.close()
        try await server.drop(name)
    }

    static func loadSteps(_ count: Int, on connection: PostgresConnection) async throws {
        try await connection.execute(
            """
            INSERT INTO "ApprovalStep" ("id", "invoiceId", "stage", "requiredDocs", "assigneeEmail", "deadline", "updatedAt")
            SELECT 's' || g, 'i' || (g % 1000 + 1), 'FINANCE_CHECK', '{"Receipt","PO"}', 'approver' || (g % 500) || '@example.com',
                   (now() AT TIME ZONE 'UTC') - (g % 12) * interval '1 day' - interval '1 hour', now()
            FROM generate_series(1, \(count)) g
            """)
        try await connection.execute("VACUUM ANALYZE")
    }

    struct ChildResult {
        let wallMs: Double
        let peakRSSKiB: Int
        let outcome: [String: JSONValue]
        let metrics: [String: Double]
    }

    static func report(_ label: String, _ result: ChildResult) {
        print("\(label):")
        print(
            String(
                format: "    wall time %8.0f ms   peak RSS %6.1f MB", result.wallMs, Double(result.peakRSSKiB) / 1024))
        let phases = result.metrics.filter { $0.key.hasSuffix("_ms") }.sorted { $0.key < $1.key }
        if !phases.isEmpty {
            print("    " + phases.map { String(format: "%@ %.0f", $0.key, $0.value) }.joined(separator: ", "))
        }
    }

    /// Runs one agent in a fresh process of this benchmark and reads back what it printed.
    static func runChild(_ agent: String, url: ConnectionString) throws -> ChildResult {
        let process = Process()
        process.executableURL = URL(
            fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        process.arguments = ["--child", agent, url.raw]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0,
            let line = text.split(separator: "\n").last(where: { $0.hasPrefix("RESULT ") }),
            case .object(let fields)? = JSONValue.parse(String(line.dropFirst(7))),
            case .number(let wall)? = fields["wall_ms"], case .number(let rss)? = fields["peak_rss_kib"],
            case .object(let outcome)? = fields["outcome"], case .object(let metrics)? = fields["metrics"]
        else {
            print("FAIL: \(agent) run: \(text)")
            Foundation.exit(1)
        }
        return ChildResult(
            wallMs: wall, peakRSSKiB: Int(rss), outcome: outcome,
            metrics: metrics.compactMapValues { if case .number(let value) = $0 { value } else { nil } })
    }

    /// The child: one run of the agent, then its wall time and getrusage's peak RSS.
    static func child(agent name: String, url: ConnectionString) async throws {
        let agent: any Engine.Agent = name == "task-monitor" ? TaskMonitor() : ApprovalNudger()
        let connection = try await PostgresConnection.connect(url)
        let effects = try await PostgresConnection.connect(url)
        let runID =
            try await connection.query(
                """
                INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, status, claimed_by, lease_seconds)
                VALUES ('default', $1, now(), gen_random_uuid()::text, 'manual', 'running', 'bench', 30) RETURNING id
                """, [PostgresValue(name)]
            ).first?.int64("id") ?? 0
        let context = AgentContext(
            runID: runID, job: name, database: connection, effects: Effects(connection: effects, namespace: JobTable.defaultNamespace), now: Date(),
            logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }, dryRun: false, databaseURL: url)
        let started = ContinuousClock.now
        let report = try await agent.run(context)
        let wall = (ContinuousClock.now - started).milliseconds
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        benchmarkCheck(report.failure == nil, "\(name) failed: \(report.failure ?? "")")
        let result: JSONValue = [
            "wall_ms": .number(wall), "peak_rss_kib": .number(Double(usage.ru_maxrss)),
            "outcome": .object(report.outcome),
            "metrics": .object(Dictionary(report.metrics.map { ($0.name, .number($0.value)) }) { a, _ in a }),
        ]
        print("RESULT \(result.text)")
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
