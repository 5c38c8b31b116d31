import BenchmarkSupport
import Foundation
import JobTable
import Ledger
import Logging
import PostgresClient
import Engine
import RunnerSupport
import VectorOS

// The insight generator at scale:
// 1. the rule pass over 100,000 deals in 50 workspaces without a model (goal: under 5 s);
// 2. 1,000 anomalous deals against a local Messages API server that answers in 200 ms, with
//    max_concurrency 8 (goal: within 1.25x of the ideal 1000 x 0.2 / 8 = 25 s).
//
// Run: swift run -c release insight-bench [CONNECTION-STRING]
// Default: the embedded PostgreSQL (RUNNER_HOME, else ./.runner). Fresh databases are used.
// PARTS=rules or PARTS=model runs one part only.
// WRITE_CONCURRENCY sets the job's `write_concurrency` for the rule pass (default: the job's default).

@main
struct InsightBench {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../..").standardized

    static func main() async throws {
        let server = try await BenchmarkDatabase.fromArguments()

        let parts = ProcessInfo.processInfo.environment["PARTS"] ?? "rules,model"
        if parts.contains("rules") { try await rulePass(server) }
        if parts.contains("model") { try await modelPass(server) }
    }

    static func rulePass(_ server: BenchmarkDatabase) async throws {
        let clock = ContinuousClock()
        // 1. Rules only.
        let (rulesDB, rulesName, rulesURL) = try await freshDatabase(server)
        var started = clock.now
        try await seed(rulesDB, deals: 100_000, workspaces: 50, allAnomalous: false)
        print(
            String(
                format: "data: 100,000 deals in 50 workspaces, loaded in %.1f s",
                (clock.now - started).milliseconds / 1000))
        let writers = ProcessInfo.processInfo.environment["WRITE_CONCURRENCY"].flatMap(Int.init)
        let pageSize = ProcessInfo.processInfo.environment["PAGE_SIZE"].flatMap(Int.init)
        var rulesOptions = InsightGenerator.Options()
        if let writers { rulesOptions.writeConcurrency = writers }
        if let pageSize { rulesOptions.pageSize = pageSize }
        // Start clean: no dirty pages left by loading the data for the run to pay for.
        try await rulesDB.execute("CHECKPOINT")
        let cpuBefore = processCPUSeconds()
        started = clock.now
        let rules = try await InsightGenerator(options: rulesOptions).run(
            try await context(rulesDB, url: rulesURL, environment: [:]))
        let rulesMs = (clock.now - started).milliseconds
        let cpu = processCPUSeconds() - cpuBefore
        print("rules: \(JSONValue.object(rules.outcome).text)")
        benchmarkCheck(
            rules.failure == nil && rules.outcome["insights_created"] != 0 && rules.outcome["failures"] == 0,
            "the rule pass wrote no insights, or failed: \(rules.failure ?? "")")
        print(
            String(
                format:
                    "  rule pass, end to end (scan, dedupe, claim, write): %.2f s (goal: under 5 s); runner CPU %.2f s",
                rulesMs / 1000, cpu))
        print(
            "  phases: "
                + rules.metrics.filter { $0.unit == "ms" }.map { "\($0.name) \(Int($0.value))" }.joined(separator: ", ")
        )
        // The next run, 30 minutes later: every anomaly has its open insight.
        started = clock.now
        let again = try await InsightGenerator(options: rulesOptions).run(
            try await context(rulesDB, url: rulesURL, environment: [:]))
        print("rules again: \(JSONValue.object(again.outcome).text)")
        benchmarkCheck(again.outcome["insights_created"] == 0, "the second rule pass wrote insights again")
        print(
            String(
                format: "  the next run (everything already has an open insight): %.2f s",
                (clock.now - started).milliseconds / 1000))
        await rulesDB.close()
        try await server.drop(rulesName)

    }

    static func modelPass(_ server: BenchmarkDatabase) async throws {
        // 2. A model that answers in 200 ms.
        let clock = ContinuousClock()
        let (modelDB, modelName, modelURL) = try await freshDatabase(server)
        try await seed(modelDB, deals: 1000, workspaces: 10, allAnomalous: true)
        let modelServer = try startModelServer(delay: 0.2)
        defer { modelServer.terminate() }
        let started = clock.now
        var modelOptions = InsightGenerator.Options()
        modelOptions.maxConcurrency = 8
        let model = try await InsightGenerator(options: modelOptions).run(
            try await context(
                modelDB, url: modelURL,
                environment: [
                    "ANTHROPIC_API_KEY": "bench", "ANTHROPIC_BASE_URL": "http://127.0.0.1:\(modelServer.port)",
                ]))
        let modelMs = (clock.now - started).milliseconds
        print("model: \(JSONValue.object(model.outcome).text)")
        benchmarkCheck(
            model.failure == nil && model.outcome["llm_calls"] == model.outcome["anomalous_deals"],
            "the model pass made \(model.outcome["llm_calls"]?.text ?? "no") calls for \(model.outcome["anomalous_deals"]?.text ?? "no") deals"
        )
        print(
            String(
                format:
                    "  1,000 deals, 200 ms per call, 8 at a time: %.2f s (%.2fx the ideal 25 s; goal at most 1.25x)",
                modelMs / 1000, modelMs / 25_000))
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        print(
            String(
                format: "peak RSS of this process over all passes: %.1f MB (goal at most 64 MB)",
                Double(usage.ru_maxrss) / 1024))
        await modelDB.close()
        try await server.drop(modelName)
    }

    /// CPU time used by this process so far (user and system), in seconds.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
    }

    static func freshDatabase(_ server: BenchmarkDatabase) async throws -> (
        PostgresConnection, String, ConnectionString
    ) {
        let (name, url, connection) = try await server.fresh("insight_bench")
        try await connection.execute(VectorOSSchema.sql)
        return (connection, name, url)
    }

    static func seed(_ connection: PostgresConnection, deals: Int, workspaces: Int, allAnomalous: Bool) async throws {
        try await connection.execute(
            """
            INSERT INTO users ("id", "email", "updatedAt") VALUES ('owner', 'owner@example.com', now());
            INSERT INTO workspaces ("id", "name", "slug", "ownerId", "updatedAt")
            SELECT 'w' || g, 'Workspace ' || g, 'w' || g, 'owner', now() FROM generate_series(1, \(workspaces)) g;
            INSERT INTO deals ("id", "title", "value", "stage", "probability", "closeDate", "workspaceId", "createdAt", "updatedAt")
            SELECT 'd' || lpad(g::text, 7, '0'), 'Deal ' || g,
                   CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 40) * 1000 END,
                   (ARRAY['lead', 'qualified', 'proposal', 'negotiation', 'won', 'lost'])[g % 6 + 1],
                   CASE WHEN g % 13 = 0 THEN NULL ELSE (g * 7) % 100 END,
                   CASE WHEN g % 4 = 0 THEN (now() AT TIME ZONE 'UTC') + (g % 30) * interval '1 day' END,
                   'w' || (g % \(workspaces) + 1),
                   (now() AT TIME ZONE 'UTC') - (g % 60) * interval '1 day',
                   (now() AT TIME ZONE 'UTC') - \(allAnomalous ? "interval '20 days'" : "(g % 25) * interval '1 day'")
            FROM generate_series(1, \(deals)) g;
            """)
        if allAnomalous { try await connection.execute(#"UPDATE deals SET "stage" = 'lead'"#) }
        try await connection.execute("ANALYZE")
    }

    /// A context as `runner once` builds it for a job without `database:` (the ledger's database).
    static func context(
        _ connection: PostgresConnection, url: ConnectionString, environment: [String: String]
    ) async throws -> AgentContext {
        let runID =
            try await connection.query(
                """
                INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, status, claimed_by, lease_seconds)
                VALUES ('default', 'deal-insights', now(), gen_random_uuid()::text, 'manual', 'running', 'bench', 30) RETURNING id
                """
            ).first?.int64("id") ?? 0
        return AgentContext(
            runID: runID, job: "deal-insights", database: connection, effects: Effects(connection: connection, namespace: JobTable.defaultNamespace),
            clients: AgentClients(environment: environment), now: Date(),
            logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }, dryRun: false, databaseURL: url,
            sharesLedgerDatabase: true)
    }

    struct ModelServer {
        let process: Process
        let port: Int
        func terminate() { kill(process.processIdentifier, SIGKILL) }
    }

    /// The test suite's HTTP server, answering every Messages API call after `delay` seconds.
    static func startModelServer(delay: Double) throws -> ModelServer {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("insight-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let answer =
            #"[{"type": "stale", "title": "Re-engage this week", "description": "No activity for weeks.", "priority": "high", "confidence": 0.8, "actions": []}]"#
        let routes: JSONValue = [
            "POST /v1/messages": [
                "status": 200, "delay": .number(delay),
                "body": [
                    "content": [["type": "text", "text": .string(answer)]],
                    "usage": ["input_tokens": 300, "output_tokens": 60],
                ],
            ]
        ]
        try routes.text.write(to: folder.appendingPathComponent("routes.json"), atomically: true, encoding: .utf8)
        let port = Int.random(in: 40_000...60_000)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", packageRoot.appendingPathComponent("Tests/Servers/http_server.py").path, String(port),
            folder.appendingPathComponent("routes.json").path, "/dev/null",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = Pipe()
        try process.run()
        _ = output.fileHandleForReading.availableData
        return ModelServer(process: process, port: port)
    }
}
