import Foundation
@testable import JobTable
import StandardAgents
import Testing

@testable import Engine
@testable import RunnerSupport
import TestSupport

/// One ledger, many services (issue 25): two job tables with namespaces `ops` and `sales` point
/// at one Postgres, as small teams run a project-ops and a sales service, and neither touches
/// the other's jobs, notifications or history.
@Suite("Namespaces: services sharing one ledger")
struct NamespaceTests {
    static let secret = "whsec-namespace-0123456789"

    /// Two services' folders on one database: `ops.yaml` and `sales.yaml`.
    final class TwoServices: Sendable {
        let ops: CLISetup
        let salesEnvironment: [String: String]

        init(_ label: String, ops: String, sales: String, extraEnvironment: [String: String] = [:]) async throws {
            self.ops = try await CLISetup(label, jobs: ops, extraEnvironment: extraEnvironment)
            let config = try self.ops.directory.write("sales.yaml", sales)
            salesEnvironment = self.ops.environment.merging(["RUNNER_CONFIG": config.path]) { $1 }
        }

        func sales(_ arguments: String...) async throws -> RunnerProcess.Result {
            try await RunnerProcess.run(arguments, environment: salesEnvironment, currentDirectory: ops.directory.url)
        }

        func jobs(_ output: String) -> [String] {
            guard case .array(let items)? = JSONValue.parse(output) else { return ["unparsable: \(output)"] }
            return items.map { "\($0["namespace"]?.stringValue ?? "?")/\($0["job"]?.stringValue ?? "?")" }
        }
    }

    @Test(
        "ops and sales each run their own report; ops' pending alert survives sales' migrate, once, schedule and retention, and is sent when the webhook is back; each sees only its own"
    )
    func twoServices() async throws {
        let server = try await TestHTTPServer(routes: ["POST /hook": ["status": 503]], hmacSecret: Self.secret)
        let services = try await TwoServices(
            "namespaces",
            ops: """
                namespace: ops
                jobs:
                  report: {command: ["true"], schedule: "0 0 1 1 *", catchup: 400d}
                  broken:
                    command: ["sh", "-c", "exit 1"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    retries: {max: 0}
                    notify: [{webhook: "\(server.baseURL)/hook", events: [failed]}]
                """,
            sales: """
                namespace: "${SALES_NAMESPACE:-sales}"
                defaults:
                  retention: {runs: 1d, metrics: 1d, effects: 1d}
                jobs:
                  report: {command: ["true"], schedule: "0 0 1 1 *", catchup: 400d}
                """,
            extraEnvironment: ["WEBHOOK_SECRET": Self.secret])
        let ops = services.ops
        // The same job name and slot in two namespaces: each runs it.
        let opsReport = try await ops.runner("once", "report")
        let salesReport = try await services.sales("once", "report")
        #expect(opsReport.status == 0 && opsReport.stdout.contains("of report succeeded"), "\(opsReport.stderr)")
        #expect(salesReport.status == 0 && salesReport.stdout.contains("of report succeeded"), "\(salesReport.stderr)")
        #expect(try await ops.count("SELECT count(DISTINCT slot) FROM runner.runs WHERE job = 'report'") == 1)
        #expect(try await ops.count("SELECT count(DISTINCT namespace) FROM runner.runs WHERE job = 'report'") == 2)

        // ops' failure, its webhook down: the notification waits, pending.
        let broken = try await ops.runner("once", "broken")
        #expect(broken.status == 1)
        let pending = "SELECT count(*) FROM runner.effects WHERE kind = 'notification' AND status = 'pending'"
        #expect(try await ops.count(pending) == 1)
        #expect(try await ops.count("SELECT count(*) FROM runner.effects WHERE namespace = 'ops'") == 1)

        // Old rows in both namespaces; only sales' go to sales' retention.
        try await ops.connection.execute(
            """
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, status, claimed_by, lease_seconds,
                                     started_at, heartbeat_at, finished_at)
            SELECT ns, 'report', now() - interval '10 days', 'old', 'once', 'succeeded', 'h:1', 30,
                   now() - interval '10 days', now() - interval '10 days', now() - interval '10 days'
            FROM unnest(ARRAY['ops', 'sales']) AS ns
            """)
        #expect(try await services.sales("migrate").status == 0)
        #expect(try await services.sales("once", "report").stdout.contains("already ran"))
        let log = ops.directory.url.appendingPathComponent("sales-schedule.log")
        let scheduler = try RunnerProcess.launch(["schedule"], environment: services.salesEnvironment, log: log)
        let pruned = try await eventually(within: .seconds(60)) {
            try await ops.count("SELECT count(*) FROM runner.runs WHERE namespace = 'sales' AND slot_key = 'old'") == 0
        }
        let stopped = try await ScheduleCommandTests.stop(scheduler)
        #expect(pruned, "sales' retention never ran: \(ScheduleCommandTests.log(log).suffix(1500))")
        #expect(stopped == 0, "\(ScheduleCommandTests.log(log).suffix(1500))")
        #expect(try await ops.count("SELECT count(*) FROM runner.runs WHERE namespace = 'ops' AND slot_key = 'old'") == 1)
        #expect(try await ops.count(pending) == 1, "sales settled ops' notification")
        #expect(try server.requests().count == 1, "only ops' own attempt reached the webhook")
        #expect(
            try await ops.count("SELECT count(*) FROM runner.jobs WHERE namespace = 'ops' AND removed_at IS NULL") == 2)

        // The webhook is back: ops' next call delivers it, once.
        try server.folder.write("routes.json", #"{"POST /hook": {"status": 200}}"#)
        _ = try await ops.runner("once", "report")
        let hooks = try server.requests().filter { $0["path"] == "/hook" }
        #expect(hooks.count == 2 && hooks.last?["signature_ok"] == .bool(true), "\(hooks)")
        #expect(try await ops.count("SELECT count(*) FROM runner.effects WHERE status = 'sent'") == 1)

        // Each service's views: its own jobs only.
        #expect(services.jobs(try await ops.runner("status", "--json").stdout) == ["ops/report", "ops/broken"])
        #expect(services.jobs(try await services.sales("status", "--json").stdout) == ["sales/report"])
        let opsHistory = Set(services.jobs(try await ops.runner("history", "--json").stdout))
        #expect(opsHistory == ["ops/report", "ops/broken"])
        #expect(Set(services.jobs(try await services.sales("history", "--json").stdout)) == ["sales/report"])
        #expect(
            Set(services.jobs(try await ops.runner("history", "--json", "--namespace", "sales").stdout))
                == ["sales/report"])
        let all = try await ops.runner("history", "--all-namespaces")
        #expect(all.stdout.hasPrefix("NAMESPACE"), "\(all.stdout)")
        #expect(all.stdout.contains("\nops ") && all.stdout.contains("\nsales "), "\(all.stdout)")
        #expect(services.jobs(try await ops.runner("missed", "--json").stdout) == [])
        let both = try await ops.runner("status", "--all-namespaces", "--json")
        #expect(Set(services.jobs(both.stdout)) == ["ops/report", "ops/broken", "sales/report"], "\(both.stdout)")
    }

    @Test("a namespace must be 1 to 64 of a-z, 0-9, _ and -: anything else is a line:col error")
    func invalidNamespace() async throws {
        for bad in ["Ops", "", "a/b", String(repeating: "x", count: 65), "ops team"] {
            let text = "namespace: \"\(bad)\"\njobs:\n  a: {command: [x], schedule: \"@daily\"}\n"
            do {
                _ = try JobTableLoader(environment: [:], agents: .standard).load(text: text, path: "jobs.yaml")
                Issue.record("namespace \(bad) was accepted")
            } catch {
                #expect(error.diagnostics.first?.line == 1 && error.diagnostics.first?.column == 12, "\(error)")
                #expect(error.description.contains("must be 1 to 64 characters of a-z, 0-9"), "\(error)")
            }
        }
        let table = try JobTableLoader(environment: ["NS": "sales-eu_2"], agents: .standard).load(
            text: "namespace: \"${NS}\"\njobs:\n  a: {command: [x], schedule: \"@daily\"}\n", path: "jobs.yaml")
        #expect(table.namespace == "sales-eu_2")
    }

    @Test(
        "a rolling deploy: two versions of one namespace's table, one without a job, called in turn: the job's definition time never moves and its missed slots are reported"
    )
    func rollingDeploy() async throws {
        let new = """
            namespace: web
            jobs:
              tick: {command: ["true"], schedule: "* * * * *", catchup: 1m}
              extra: {command: ["true"], schedule: "* * * * *", catchup: 1m}
            """
        let services = try await TwoServices(
            "rolling", ops: new,
            sales: """
                namespace: web
                jobs:
                  tick: {command: ["true"], schedule: "* * * * *", catchup: 1m}
                """)
        let ops = services.ops
        #expect(try await ops.runner("migrate").status == 0)
        // Both jobs have been defined for ten minutes (on a minute), and neither has run since.
        try await ops.connection.execute(
            "UPDATE runner.jobs SET defined_at = date_trunc('minute', now()) - interval '10 minutes' WHERE namespace = 'web'")
        func definedAt() async throws -> Date? {
            try await ops.connection.query(
                "SELECT defined_at FROM runner.jobs WHERE namespace = 'web' AND name = 'extra'"
            ).first?.date("defined_at")
        }
        let defined = try #require(try await definedAt())
        for round in 0..<3 {
            #expect(try await services.sales("migrate").status == 0)
            #expect(try await services.sales("once", "tick").status == 0)
            #expect(try await ops.runner("migrate").status == 0)
            #expect(try await ops.runner("status").status == 0)
            #expect(try await definedAt() == defined, "round \(round): the definition time moved")
        }
        let missed = try await ops.runner("missed", "--json")
        let extraMissed = services.jobs(missed.stdout).filter { $0 == "web/extra" }.count
        // Defined ten minutes ago, a one-minute catchup: ten slots (eleven if a minute began meanwhile).
        #expect((10...11).contains(extraMissed), "\(missed.stdout)")
        #expect(
            try await ops.count("SELECT count(*) FROM runner.runs WHERE job = 'extra' AND status = 'missed'")
                == extraMissed)
    }
}
