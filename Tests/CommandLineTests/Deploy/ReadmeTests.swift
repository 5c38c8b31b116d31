import Foundation
import Testing

@testable import Engine
@testable import PostgresClient
@testable import ZOARK
@testable import VectorOS
@testable import Demo
import TestSupport

/// The README as an operator follows it: its quick start is what CI runs, its SQL runs on a real
/// ledger, its deploy commands run here as written where they can, and its job-table reference
/// names every option the agents take.
@Suite("README: quick start, SQL, deploy commands, job-table reference")
struct ReadmeTests {
    static let text = Readme.text

    /// The fenced blocks of `language` in `text`, in order.
    static func blocks(_ language: String, in text: String) -> [String] {
        var blocks: [String] = []
        var current: [String]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if current == nil, line == "```\(language)" {
                current = []
            } else if current != nil, line == "```" {
                blocks.append(current!.joined(separator: "\n"))
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }

    /// The part of the README from the heading `from` to the next heading of the same level.
    static func section(_ heading: String) -> String {
        guard let start = text.range(of: "\n\(heading)\n") else { return "" }
        let rest = text[start.upperBound...]
        let end = rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex
        return String(rest[..<end])
    }

    /// A block's commands, comments and blank lines left out.
    static func commands(in block: String) -> [String] {
        block.split(separator: "\n").map { line in
            let command = line.range(of: "  #").map { String(line[..<$0.lowerBound]) } ?? String(line)
            return command.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }

    @Test("the two quick-start commands come first, and CI runs both")
    func quickStart() throws {
        let first = try #require(Self.blocks("sh", in: Self.text).first)
        let commands = Self.commands(in: first)
        #expect(commands == ["scripts/demo", "scripts/test"], "\(commands)")
        let ci = try String(contentsOf: DeployFilesTests.root.appendingPathComponent(".ci/run"), encoding: .utf8)
        for command in commands {
            #expect(ci.split(separator: "\n").contains { $0.hasPrefix(command) }, ".ci/run does not run \(command)")
        }
    }

    @Test("the review SQL runs on a ledger with runs of every kind, and each query finds them")
    func reviewSQL() async throws {
        let queries = Self.blocks("sql", in: Self.section("## The ledger"))
        #expect(queries.count >= 5)
        let (_, connection) = try await TestDatabase.migrated("readmesql")
        // A failure, a success, a skip and a miss today; a sent email and a draft; a metric.
        try await connection.execute(
            """
            INSERT INTO runner.jobs (namespace, name, schedule, timezone) VALUES ('default', 'stuck-tasks', '*/30 * * * *', 'UTC');
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, claimed_by, lease_seconds,
                                     started_at, finished_at, duration_ms, outcome, error)
            VALUES
              ('default', 'stuck-tasks', now() - interval '2 hours', 'a', 'once', 1, 'failed', 'h:1', 30, now() - interval '2 hours',
               now() - interval '2 hours', 120, NULL, 'exit code 1'),
              ('default', 'stuck-tasks', now() - interval '90 minutes', 'b', 'once', 1, 'succeeded', 'h:1', 30,
               now() - interval '90 minutes', now() - interval '90 minutes', 80, NULL, NULL),
              ('default', 'stuck-tasks', now() - interval '1 hour', 'c', 'once', 1, 'skipped', 'h:1', 30, now() - interval '1 hour',
               now() - interval '1 hour', 0, '{"skipped_because": "run 2 is still running"}', NULL),
              ('default', 'stuck-tasks', now() - interval '3 hours', 'd', 'once', 1, 'missed', 'h:1', 30, now() - interval '30 minutes',
               now() - interval '30 minutes', 0, NULL, 'missed: later than its catchup');
            INSERT INTO runner.effects (namespace, kind, key, status, target, payload, created_at, done_at)
            VALUES ('default', 'email', 'k1', 'sent', 'a@example.com', '{}', now(), now()),
                   ('default', 'email', 'k2', 'draft', 'b@example.com', '{}', now(), now());
            INSERT INTO runner.metrics (namespace, run_id, job, name, value, unit)
            SELECT 'default', id, job, 'duration_ms', duration_ms, 'ms' FROM runner.runs WHERE status = 'succeeded';
            """)
        for query in queries {
            let rows = try await connection.query(query)
            #expect(rows.count >= 1, "no rows from:\n\(query)")
        }
        await connection.close()
    }

    /// Programs of the deploy sections that cannot run on this machine, and where what they do
    /// is checked instead.
    static let checkedElsewhere: [String: String] = [
        "docker": "scripts/check-image builds and runs the same Dockerfile with buildah (CI runs it)",
        "kubectl": "DeployFilesTests.kubernetes validates the manifests against Kubernetes' schemas",
        "install": "DeployFilesTests.systemd verifies the unit it installs with systemd-analyze",
        "systemctl": "DeployFilesTests.systemd verifies the unit it starts with systemd-analyze",
    ]

    @Test("every runner command of the deploy sections runs here as written; the others are checked elsewhere")
    func deployCommands() async throws {
        let blocks = Self.blocks("sh", in: Self.section("## Deploying"))
        let commands = blocks.flatMap(Self.commands(in:))
        let runnable = commands.filter { $0.hasPrefix("runner ") }
        #expect(runnable.count >= 4, "\(commands)")
        for command in commands where !command.hasPrefix("runner ") {
            let program = String(command.prefix { $0 != " " })
            #expect(Self.checkedElsewhere[program] != nil, "a deploy command neither run nor checked: \(command)")
        }
        // The repository's jobs.yaml against a database holding ZOARK's tables, as in production.
        let url = try await TestDatabase.fresh("readmedeploy")
        let connection = try await PostgresConnection.connect(url)
        try await connection.execute(ZoarkSchema.sql)
        try await connection.execute(DemoData.zoark)
        let environment = [
            "DATABASE_URL": url.raw,
            "RUNNER_CONFIG": DeployFilesTests.root.appendingPathComponent("jobs.yaml").path,
            "EMAIL_PROVIDER": "", "ALERT_EMAIL": "",
        ]
        for command in runnable {
            let arguments = command.split(separator: " ").dropFirst().map(String.init)
            let result = try await RunnerProcess.run(arguments, environment: environment)
            #expect(result.status == 0, "`\(command)`: \(result.stdout) \(result.stderr)")
        }
        // The dry run read the product's tables and sent nothing.
        let effects = try await connection.query("SELECT count(*) AS n FROM runner.effects").first?.int("n")
        #expect(effects == 0)
        let dry = try await connection.query("SELECT status, dry_run FROM runner.runs WHERE job = 'stuck-tasks'")
        #expect(
            try dry.map { "\(try $0.string("status") ?? "") \(try $0.bool("dry_run") ?? false)" } == ["succeeded true"])
        await connection.close()
    }

    @Test("the job-table reference names every agent option, and the defaults' keys")
    func jobTableReference() {
        let reference = Self.section("## The job table (`jobs.yaml`)")
        let options =
            TaskMonitor.Options.fields.map(\.key) + ApprovalNudger.Options.fields.map(\.key)
            + TimesheetDrafter.Options.fields.map(\.key) + InsightGenerator.Options.fields.map(\.key)
        #expect(options.count >= 12)
        for key in options { #expect(reference.contains("| `\(key)` |"), "the README's reference lacks with: \(key)") }
        for key in [
            "namespace", "timezone", "timeout", "overlap", "catchup", "retries", "retention", "agent", "command", "schedule",
            "with", "database", "effects_scope", "env", "ping_url",
        ] {
            #expect(reference.contains("| `\(key)` |"), "the README's reference lacks \(key)")
        }
        #expect(reference.contains("`claude-sonnet-4-5`") && InsightWriter.defaultModel == "claude-sonnet-4-5")
    }
}
