import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Ledger
import TestSupport

/// `runner migrate`, `once`, `history` and `status`, run as processes against the test server.
@Suite("runner once and the run history")
struct OnceCommandTests {
    typealias Setup = CLISetup

    @Test("migrate applies the schema, then reports it up to date")
    func migrate() async throws {
        let setup = try await Setup(
            "climigrate", jobs: "jobs:\n  a: {command: [\"true\"], schedule: \"@daily\"}\n", migrate: false)
        let missing = try await setup.runner("history")
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("run `runner migrate` first"))
        let first = try await setup.runner("migrate")
        #expect(first.status == 0)
        let versions = Migration.all.map { String($0.version) }.joined(separator: ", ")
        let registered = "registered 1 job of \(setup.environment["RUNNER_CONFIG"] ?? "")\n"
        #expect(
            first.stdout
                == "applied migrations \(versions); runner schema is at version \(Migration.latestVersion)\n"
                + registered)
        let second = try await setup.runner("migrate")
        #expect(second.stdout == "runner schema is up to date (version \(Migration.latestVersion))\n" + registered)
        // The table's jobs are in the ledger before their first run.
        #expect(try await setup.count("SELECT count(*) FROM runner.jobs WHERE name = 'a'") == 1)
    }

    @Test("once runs the current slot; a second call in the same slot does nothing and exits 0")
    func onceTwice() async throws {
        let setup = try await Setup(
            "oncetwice",
            jobs: """
                jobs:
                  count:
                    command: ["sh", "-c", "echo \\"$RUNNER_RUN_ID $RUNNER_SLOT $RUNNER_JOB\\" >> ran.txt; echo done"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                """)
        let first = try await setup.runner("once", "count")
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.hasPrefix("run 1 of count succeeded"))
        let second = try await setup.runner("once", "count")
        #expect(second.status == 0)
        #expect(second.stdout.contains("count already ran in slot"))
        #expect(second.stdout.contains("(run 1, succeeded); nothing to do"))
        let lines = try String(contentsOf: setup.directory.url.appendingPathComponent("ran.txt"), encoding: .utf8)
            .split(separator: "\n")
        #expect(lines.count == 1)
        let year = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: Date()).year!
        #expect(lines.first == "1 \(year)-01-01T00:00:00Z count")
        #expect(try await setup.count("SELECT count(*) FROM runner.runs") == 1)
        let metrics = try await setup.connection.query(
            "SELECT name, value FROM runner.metrics WHERE run_id = 1 ORDER BY name")
        let names = try metrics.map { try $0.string("name") ?? "" }
        #expect(
            names == ["clock_skew_ms", "duration_ms", "exit_code", "schedule_delay_ms", "stderr_bytes", "stdout_bytes"])
        #expect(try metrics.first { try $0.string("name") == "stdout_bytes" }?.double("value") == 5)
    }

    @Test("eight processes started at once for one slot: one run row, the command runs once")
    func eightProcesses() async throws {
        let setup = try await Setup(
            "eight",
            jobs: """
                jobs:
                  once-only:
                    command: ["sh", "-c", "echo $$ >> side-effect.txt; sleep 0.2"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                """)
        let results = try await withThrowingTaskGroup(of: RunnerProcess.Result.self) { group in
            for _ in 0..<8 {
                group.addTask { try await setup.runner("once", "once-only") }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
        #expect(results.filter { $0.stdout.contains("succeeded in") }.count == 1)
        #expect(results.filter { $0.stdout.contains("nothing to do") }.count == 7)
        let effects = try String(
            contentsOf: setup.directory.url.appendingPathComponent("side-effect.txt"), encoding: .utf8)
        #expect(effects.split(separator: "\n").count == 1)
        #expect(try await setup.count("SELECT count(*) FROM runner.runs") == 1)
    }

    @Test("a timeout stops the command and everything it started, and records timed_out")
    func timeout() async throws {
        let setup = try await Setup(
            "timeout",
            jobs: """
                jobs:
                  slow:
                    command: ["sh", "-c", "sleep 30 & echo $! > child.pid; echo started; wait"]
                    schedule: "@every 1h"
                    timeout: 1s
                    retries: {max: 0}
                """)
        let started = Date()
        let result = try await setup.runner("once", "slow")
        #expect(result.status == 1)
        // The stop is bounded by the run's own clock (the timeout, then the stop grace); the
        // whole process, started on a busy machine, only loosely.
        #expect(Date().timeIntervalSince(started) < 60)
        #expect(result.stdout.contains("timed_out"))
        let row = try await setup.connection.query(
            "SELECT status, error, outcome->>'stdout_tail' AS tail, duration_ms FROM runner.runs")
        #expect((try row.first?.int64("duration_ms") ?? .max) < 10_000)
        #expect(try row.first?.string("status") == "timed_out")
        #expect(try row.first?.string("error")?.hasPrefix("timed out after 1s") == true)
        #expect(try row.first?.string("tail") == "started\n")
        let pidText = try String(contentsOf: setup.directory.url.appendingPathComponent("child.pid"), encoding: .utf8)
        let pid = try #require(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        try await Task.sleep(for: .milliseconds(200))
        // Gone, or a zombie waiting for whoever adopted it to reap it: not running either way.
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let state = stat.split(separator: ")").last?.split(separator: " ").first ?? "gone"
        #expect(state == "gone" || state == "Z", "the command's background child \(pid) is still running (\(state))")
    }

    @Test("a failed run is retried with backoff, each attempt a run of its own, until one succeeds")
    func retriesUntilSuccess() async throws {
        let setup = try await Setup(
            "retries",
            jobs: """
                jobs:
                  flaky:
                    command: ["sh", "-c", "n=$(cat tries 2>/dev/null || echo 0); n=$((n+1)); echo $n > tries; [ $n -ge 3 ]"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    retries: {max: 3, backoff: 100ms, max_backoff: 150ms}
                """)
        let result = try await setup.runner("once", "flaky")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.first?.hasPrefix("run 1 of flaky failed") == true)
        #expect(lines.dropFirst().first?.contains("failed") == true)
        #expect(lines.dropFirst().first?.contains("(attempt 2)") == true)
        #expect(lines.last?.contains("succeeded") == true)
        #expect(lines.last?.contains("(attempt 3)") == true)
        #expect(result.stderr.contains("retrying"))
        let runs = try await setup.connection.query(
            "SELECT slot_key, trigger, attempt, status, slot FROM runner.runs ORDER BY id")
        let rows = try runs.map {
            [try $0.string("trigger") ?? "", String(try $0.int("attempt") ?? 0), try $0.string("status") ?? ""]
        }
        #expect(rows == [["once", "1", "failed"], ["retry", "2", "failed"], ["retry", "3", "succeeded"]])
        let keys = try runs.map { try $0.string("slot_key") ?? "" }
        #expect(keys.count == 3 && keys[1] == keys[0] + "#2" && keys[2] == keys[0] + "#3")
        #expect(Set(try runs.map { try $0.string("slot") ?? "" }).count == 1)
        // The slot is done: another call does nothing.
        let again = try await setup.runner("once", "flaky")
        #expect(again.status == 0)
        #expect(again.stdout.contains("already ran"))
        #expect(try await setup.count("SELECT count(*) FROM runner.runs") == 3)
    }

    @Test("retries stop at max: the last attempt's failure is the exit code")
    func retriesExhausted() async throws {
        let setup = try await Setup(
            "retriesout",
            jobs: """
                jobs:
                  broken:
                    command: ["sh", "-c", "echo x >> tries; exit 4"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    retries: {max: 1, backoff: 100ms}
                """)
        let result = try await setup.runner("once", "broken")
        #expect(result.status == 1)
        #expect(result.stdout.split(separator: "\n").count == 2)
        let tries = try String(contentsOf: setup.directory.url.appendingPathComponent("tries"), encoding: .utf8)
        #expect(tries == "x\nx\n")
        #expect(try await setup.count("SELECT count(*) FROM runner.runs WHERE status = 'failed'") == 2)
    }

    @Test("SIGTERM while waiting to retry: no further attempt, exit 1")
    func sigtermDuringBackoff() async throws {
        let setup = try await Setup(
            "retryterm",
            jobs: """
                jobs:
                  broken:
                    command: ["false"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    retries: {max: 3, backoff: 1m}
                """)
        let process = try RunnerProcess.launch(["once", "broken"], environment: setup.environment)
        var failed = 0
        for _ in 0..<100 where failed == 0 {
            try await Task.sleep(for: .milliseconds(50))
            failed = try await setup.count("SELECT count(*) FROM runner.runs WHERE status = 'failed'")
        }
        #expect(failed == 1)
        let stopped = Date()
        kill(process.processIdentifier, SIGTERM)
        try await offPool { process.waitUntilExit() }
        // Well inside the 1m backoff (jitter keeps it over 30 s), with room for a loaded machine.
        #expect(Date().timeIntervalSince(stopped) < 20)
        #expect(process.terminationStatus == 1)
        #expect(try await setup.count("SELECT count(*) FROM runner.runs") == 1)
    }

    @Test("ping_url: start when the run begins, then success, or fail after the last attempt only")
    func pings() async throws {
        let server = try await TestHTTPServer(routes: [
            "GET /ping/check-secret/start": ["status": 200], "POST /ping/check-secret": ["status": 200],
            "POST /ping/check-secret/fail": ["status": 200],
        ])
        let setup = try await Setup(
            "pings",
            jobs: """
                jobs:
                  good:
                    command: ["true"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    ping_url: \(server.baseURL)/ping/check-secret
                  bad:
                    command: ["sh", "-c", "echo nope >&2; exit 3"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    ping_url: \(server.baseURL)/ping/check-secret/
                    retries: {max: 1, backoff: 100ms}
                """)
        #expect(try await setup.runner("once", "good").status == 0)
        #expect(try await setup.runner("once", "good").stdout.contains("nothing to do"))
        #expect(try await setup.runner("once", "good", "--dry-run").status == 0)
        var requests = try server.requests()
        func line(_ request: JSONValue) -> String {
            guard case .string(let method)? = request["method"], case .string(let path)? = request["path"] else {
                return "\(request)"
            }
            return "\(method) \(path)"
        }
        #expect(requests.map(line) == ["GET /ping/check-secret/start", "POST /ping/check-secret"])
        guard case .string(let body)? = requests.last?["body"] else {
            Issue.record("no body in \(requests)")
            return
        }
        #expect(body.hasPrefix("run 1 of good succeeded"))

        #expect(try await setup.runner("once", "bad").status == 1)
        requests = Array(try server.requests().dropFirst(2))
        #expect(requests.map(line) == ["GET /ping/check-secret/start", "POST /ping/check-secret/fail"])
        guard case .string(let failure)? = requests.last?["body"] else {
            Issue.record("no body in \(requests)")
            return
        }
        #expect(failure.contains("failed (attempt 2): exit code 3: nope"))
    }

    @Test("a start ping the endpoint holds does not delay the command; the final ping follows it")
    func startPingNeverDelays() async throws {
        let scratch = try TemporaryDirectory()
        let marker = scratch.url.appendingPathComponent("command-ran").path
        // The endpoint answers the start ping only once the command has run: were the command
        // waiting for that answer, the ping would time out first (3 s) and be logged as failed.
        let server = try await TestHTTPServer(routes: [
            "GET /ping/held/start": ["status": 200, "hold_until": .string(marker)],
            "POST /ping/held": ["status": 200],
        ])
        let setup = try await Setup(
            "heldping",
            jobs: """
                jobs:
                  good:
                    command: ["touch", "\(marker)"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    ping_url: \(server.baseURL)/ping/held
                """)
        let result = try await setup.runner("once", "good")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stderr.contains("ping failed"), "\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: marker))
        let paths = try server.requests().map { $0["path"]?.stringValue ?? "" }
        #expect(paths == ["/ping/held/start", "/ping/held"], "the final ping comes after the start: \(paths)")
    }

    @Test("a ping that cannot be delivered is logged by host and never fails the run")
    func pingUnreachable() async throws {
        // Port 1 on loopback: nothing listens there (a free port picked now may be another test's later).
        let port = 1
        let setup = try await Setup(
            "pingdown",
            jobs: """
                jobs:
                  good:
                    command: ["true"]
                    schedule: "@every 1h"
                    ping_url: http://127.0.0.1:\(port)/ping/check-secret
                """)
        let result = try await setup.runner("once", "good")
        #expect(result.status == 0)
        #expect(result.stdout.contains("succeeded"))
        #expect(result.stderr.contains("ping failed"))
        #expect(result.stderr.contains("host=127.0.0.1"))
        #expect(!result.stderr.contains("check-secret"))
    }

    @Test("SIGTERM stops the run, records it as interrupted, and exits 1")
    func sigterm() async throws {
        let setup = try await Setup(
            "sigterm", jobs: "jobs:\n  long:\n    command: [\"sleep\", \"30\"]\n    schedule: \"@every 1h\"\n")
        let process = try RunnerProcess.launch(["once", "long"], environment: setup.environment)
        // Wait until the run is claimed and its command started.
        var running = 0
        for _ in 0..<100 where running == 0 {
            try await Task.sleep(for: .milliseconds(50))
            running = try await setup.count("SELECT count(*) FROM runner.runs WHERE status = 'running'")
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(running == 1)
        kill(process.processIdentifier, SIGTERM)
        try await offPool { process.waitUntilExit() }
        #expect(process.terminationStatus == 1)
        let row = try await setup.connection.query("SELECT status, error FROM runner.runs")
        #expect(try row.first?.string("status") == "interrupted")
        #expect(try row.first?.string("error")?.hasPrefix("interrupted by shutdown") == true)
    }

    @Test("a failed command exits 1 and keeps its exit code and the last 4 KiB of output")
    func failure() async throws {
        let setup = try await Setup(
            "failure",
            jobs: """
                jobs:
                  noisy:
                    command: ["sh", "-c", "head -c 10240 /dev/zero | tr '\\\\0' x; echo; echo 'it broke' >&2; exit 7"]
                    schedule: "@every 1h"
                    retries: {max: 0}
                """)
        let result = try await setup.runner("once", "noisy")
        #expect(result.status == 1)
        #expect(result.stdout.contains("failed"))
        #expect(result.stdout.contains("exit code 7: it broke"))
        let row = try await setup.connection.query(
            "SELECT outcome->>'exit_code' AS code, length(outcome->>'stdout_tail') AS tail, error FROM runner.runs")
        #expect(try row.first?.string("code") == "7")
        #expect(try row.first?.int("tail") == 4096)
        let bytes = try await setup.connection.query("SELECT value FROM runner.metrics WHERE name = 'stdout_bytes'")
        #expect(try bytes.first?.double("value") == 10241)
    }

    @Test("a command's error keeps the last 20 lines of its stderr")
    func stderrTail() async throws {
        let setup = try await Setup(
            "stderrtail",
            jobs: """
                jobs:
                  chatty:
                    command: ["sh", "-c", "for i in $(seq 1 30); do echo line$i >&2; done; exit 3"]
                    schedule: "@every 1h"
                    retries: {max: 0}
                """)
        let result = try await setup.runner("once", "chatty")
        #expect(result.status == 1)
        let error = try #require(
            try await setup.connection.query("SELECT error FROM runner.runs").first?.string("error"))
        let expected = (11...30).map { "line\($0)" }.joined(separator: "\n")
        #expect(error == "exit code 3:\n" + expected, "\(error)")
    }

    @Test("a command job gets the ledger's connection as DATABASE_URL and libpq's PG* variables: psql works as written")
    func commandSeesTheDatabase() async throws {
        let setup = try await Setup(
            "commanddb",
            jobs: """
                jobs:
                  vacuum:
                    command: ["psql", "-X", "-At", "-c", "VACUUM ANALYZE", "-c", "SELECT current_database()"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    retries: {max: 0}
                  env:
                    command: ["sh", "-c", "test \\"$DATABASE_URL\\" = \\"$EXPECTED\\" && echo \\"$PGDATABASE\\""]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    env: {EXPECTED: "${DATABASE_URL}"}
                    retries: {max: 0}
                """)
        let database = try #require(
            try await setup.connection.query("SELECT current_database() AS name").first?.string("name"))
        let vacuum = try await setup.runner("once", "vacuum")
        #expect(vacuum.status == 0, "\(vacuum.stdout) \(vacuum.stderr)")
        let env = try await setup.runner("once", "env")
        #expect(env.status == 0, "\(env.stdout) \(env.stderr)")
        let tails = try await setup.connection.query(
            "SELECT job, outcome->>'stdout_tail' AS tail FROM runner.runs ORDER BY id")
        let outcomes = try await setup.connection.query("SELECT outcome::text AS o, error FROM runner.runs ORDER BY id")
            .map { "\(try $0.string("o") ?? "") \(try $0.string("error") ?? "")" }
        #expect(
            try tails.map { try $0.string("tail") ?? "" } == ["VACUUM\n\(database)\n", "\(database)\n"], "\(outcomes)")
    }

    @Test(
        "a failure no retry can mend (the product's tables are missing) is not retried: exit 1 at once, with what to do"
    )
    func permanentFailure() async throws {
        let setup = try await Setup(
            "permanent",
            jobs: """
                jobs:
                  stuck-tasks:
                    agent: task-monitor
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                """)
        let result = try await setup.runner("once", "stuck-tasks")
        #expect(result.status == 1)
        #expect(result.stdout.contains("relation \"Task\" does not exist"), "\(result.stdout)")
        #expect(
            result.stdout.contains("\nhint: the tables this job reads are not in that database: point DATABASE_URL"))
        #expect(result.stdout.contains("`runner demo`"))
        #expect(!result.stderr.contains("retrying"), "\(result.stderr)")
        let rows = try await setup.connection.query(
            "SELECT status, retry_at IS NULL AS settled, outcome->>'permanent' AS permanent FROM runner.runs")
        #expect(rows.count == 1)
        #expect(try rows.first?.string("status") == "failed" && rows.first?.bool("settled") == true)
        #expect(try rows.first?.string("permanent") == "true")
        // No later call retries it either.
        let again = try await setup.runner("once", "stuck-tasks")
        #expect(again.status == 0 && again.stdout.contains("nothing to do"), "\(again.stdout)")
        #expect(try await setup.count("SELECT count(*) FROM runner.runs") == 1)
    }

    @Test("--force makes manual runs with their own keys; the cron slot stays free")
    func force() async throws {
        let setup = try await Setup(
            "force",
            jobs: "jobs:\n  job:\n    command: [\"sh\", \"-c\", \"echo x >> ran.txt\"]\n    schedule: \"@every 1h\"\n")
        #expect(try await setup.runner("once", "job", "--force").status == 0)
        #expect(try await setup.runner("once", "job", "--force").status == 0)
        let scheduled = try await setup.runner("once", "job")
        #expect(scheduled.stdout.contains("succeeded"))
        let triggers = try await setup.connection.query("SELECT trigger, origin, slot_key FROM runner.runs ORDER BY id")
        #expect(try triggers.map { try $0.string("trigger") ?? "" } == ["manual", "manual", "once"])
        #expect(try triggers.map { try $0.string("origin") ?? "" } == ["manual", "manual", "schedule"])
        #expect(try triggers.map { try $0.string("slot_key") ?? "" }.prefix(2).allSatisfy { $0.hasPrefix("manual:") })
        let ran = try String(contentsOf: setup.directory.url.appendingPathComponent("ran.txt"), encoding: .utf8)
        #expect(ran == "x\nx\nx\n")
    }

    @Test("row 15: outcomes and history keep a command's argv as written, never the expanded secret")
    func argvAsWritten() async throws {
        let setup = try await Setup(
            "argvwritten",
            jobs: """
                defaults: {retries: {max: 0}}
                jobs:
                  call:
                    command: ["curl", "-H", "Authorization: Bearer ${API_TOKEN}", "https://example.invalid"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                  missing:
                    command: ["/nonexistent/${API_TOKEN}/tool", "${API_TOKEN}"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                """, extraEnvironment: ["API_TOKEN": "tok-SECRET-4242"])
        #expect(try await setup.runner("once", "call", "--dry-run").status == 0)
        let failed = try await setup.runner("once", "missing")
        #expect(failed.status == 1)
        let history = try await setup.runner("history", "--json")
        #expect(history.status == 0)
        for text in [history.stdout, failed.stdout, failed.stderr] {
            #expect(!text.contains("SECRET-4242"))
        }
        #expect(history.stdout.contains("Authorization: Bearer ${API_TOKEN}"))
        #expect(history.stdout.contains("/nonexistent/${API_TOKEN}/tool could not start"))
        let stored = try await setup.connection.query(
            "SELECT outcome::text || coalesce(error, '') AS t FROM runner.runs")
        #expect(stored.count == 2)
        for row in stored { #expect(try row.string("t")?.contains("SECRET") == false) }
    }

    @Test("--dry-run records a dry run and starts nothing")
    func dryRun() async throws {
        let setup = try await Setup(
            "dryrun",
            jobs: "jobs:\n  job:\n    command: [\"sh\", \"-c\", \"echo x >> ran.txt\"]\n    schedule: \"@every 1h\"\n")
        let result = try await setup.runner("once", "job", "--dry-run")
        #expect(result.status == 0)
        #expect(result.stdout.contains("(dry run)"))
        #expect(!FileManager.default.fileExists(atPath: setup.directory.url.appendingPathComponent("ran.txt").path))
        let row = try await setup.connection.query("SELECT dry_run, slot_key FROM runner.runs")
        #expect(try row.first?.bool("dry_run") == true)
        #expect(try row.first?.string("slot_key")?.hasPrefix("dry-run:") == true)
        #expect(try await setup.runner("once", "job").stdout.contains("succeeded"))
    }

    @Test(
        "row 10: a call later than catchup runs nothing: a slot from before the job's definition is owed nothing; a later one leaves one missed row"
    )
    func catchupWindow() async throws {
        let setup = try await Setup(
            "catchup",
            jobs:
                "jobs:\n  yearly:\n    command: [\"touch\", \"ran.txt\"]\n    schedule: \"0 0 1 1 *\"\n    catchup: 1h\n"
        )
        let january = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: Date())
        guard !(january.month == 1 && january.day == 1 && january.hour == 0) else { return }
        // The job is new: its slot of January lies before its definition, and nothing is owed.
        let new = try await setup.runner("once", "yearly")
        #expect(new.status == 0, "\(new.stderr)")
        #expect(new.stdout.contains("is past its catchup (1h) and before the job's schedule took its present form"))
        #expect(new.stdout.contains("nothing recorded"), "\(new.stdout)")
        #expect(try await setup.connection.query("SELECT id FROM runner.runs").count == 0)
        // Defined since last year: the slot is owed, and missed.
        try await setup.connection.execute("UPDATE runner.jobs SET defined_at = now() - interval '400 days'")
        let result = try await setup.runner("once", "yearly")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.stdout.contains("missed: this call came later than its catchup (1h)")
                && result.stdout.contains("recorded as missed (run "), "\(result.stdout)")
        let row = try #require(
            try await setup.connection.query(
                "SELECT status, trigger, slot_key, error FROM runner.runs"
            ).first)
        #expect(try row.string("status") == "missed")
        #expect(try row.string("trigger") == "once")
        #expect(try row.string("slot_key")?.hasSuffix("-01-01T00:00:00Z") == true)
        #expect(try row.string("error")?.contains("missed: no run started for this slot within its catchup") == true)
        #expect(!FileManager.default.fileExists(atPath: setup.directory.url.appendingPathComponent("ran.txt").path))
        // Called again: the slot is already recorded; still one row.
        let again = try await setup.runner("once", "yearly")
        #expect(again.status == 0)
        #expect(again.stdout.contains("already recorded"))
        #expect(try await setup.count("SELECT count(*) FROM runner.runs") == 1)
        // runner status counts it.
        let status = try await setup.runner("status", "--json")
        guard case .array(let items)? = JSONValue.parse(status.stdout), let item = items.first else {
            Issue.record("status --json printed \(status.stdout)")
            return
        }
        #expect(item["missed_7d"] == 1)
        #expect(item["last_status"] == .null)
    }

    @Test("an abandoned run is found by runner status and the job runs again")
    func abandonedByStatus() async throws {
        let setup = try await Setup(
            "abandonedcli", jobs: "jobs:\n  job:\n    command: [\"true\"]\n    schedule: \"@every 1h\"\n")
        try await setup.connection.execute(
            """
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, status, claimed_by, lease_seconds, started_at, heartbeat_at)
            VALUES ('default', 'job', now() - interval '3 hours', 'old', 'once', 'running', 'gone-host:42', 30,
                    now() - interval '3 hours', now() - interval '2 hours')
            """)
        let status = try await setup.runner("status", "--json")
        #expect(status.status == 0, "\(status.stderr)")
        let abandoned = try await setup.connection.query("SELECT status, error FROM runner.runs WHERE slot_key = 'old'")
        #expect(try abandoned.first?.string("status") == "abandoned")
        #expect(try abandoned.first?.string("error")?.contains("gone-host:42") == true)
        let parsed = try #require(JSONValue.parse(status.stdout))
        guard case .array(let items) = parsed, let item = items.first else {
            Issue.record("status --json printed \(status.stdout)")
            return
        }
        #expect(item["job"] == "job")
        #expect(item["last_status"] == "abandoned")
        #expect(item["schedule"] == "@every 1h")
        #expect(item["timezone"] == "UTC")
        #expect(try await setup.runner("once", "job").stdout.contains("succeeded"))
    }

    @Test("history prints a table or JSON, newest first, with filters")
    func history() async throws {
        let setup = try await Setup(
            "history",
            jobs: """
                jobs:
                  good: {command: ["true"], schedule: "@every 1h"}
                  bad: {command: ["false"], schedule: "@every 1h", retries: {max: 0}}
                """)
        _ = try await setup.runner("once", "good")
        _ = try await setup.runner("once", "bad")
        let table = try await setup.runner("history")
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("RUN  JOB   SLOT"))
        #expect(lines[1].contains("bad") && lines[1].contains("failed") && lines[1].contains("exit code 1"))
        #expect(lines[2].contains("good") && lines[2].contains("succeeded"))
        let json = try await setup.runner("history", "--json", "--status", "failed")
        guard case .array(let runs)? = JSONValue.parse(json.stdout) else {
            Issue.record("history --json printed \(json.stdout)")
            return
        }
        #expect(runs.count == 1)
        let run = try #require(runs.first)
        for key in [
            "job", "slot", "slot_key", "attempt", "trigger", "status", "started_at", "finished_at", "duration_ms",
            "outcome", "error",
        ] {
            #expect(run[key] != nil, "missing \(key)")
        }
        #expect(run["job"] == "bad")
        #expect(try await setup.runner("history", "--job", "good", "--json").stdout.contains("\"good\""))
        #expect(try await setup.runner("history", "--since", "soon").status == 2)

        // A typo is an error that names the jobs; a job of the table without runs is not.
        let typo = try await setup.runner("history", "--job", "godo")
        #expect(typo.status == 2, "\(typo.stdout) \(typo.stderr)")
        #expect(
            typo.stderr.contains("error: no job \"godo\"") && typo.stderr.contains("hint: jobs: bad, good"),
            "\(typo.stderr)")
        #expect(typo.stdout.isEmpty)
        let config = try #require(setup.environment["RUNNER_CONFIG"])
        try
            (try String(contentsOfFile: config, encoding: .utf8)
            + "\n  fresh: {command: [\"true\"], schedule: \"@daily\"}\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let fresh = try await setup.runner("history", "--job", "fresh", "--config", config)
        #expect(
            fresh.status == 0 && fresh.stdout.contains("no runs recorded for fresh"), "\(fresh.stdout) \(fresh.stderr)")

        // A list cut at --limit says so (on stderr with --json, which stays a JSON array).
        let cut = try await setup.runner("history", "--limit", "1")
        #expect(cut.stdout.split(separator: "\n").count == 3, "\(cut.stdout)")
        #expect(cut.stdout.contains("more runs than --limit 1: showing the newest 1"), "\(cut.stdout)")
        let whole = try await setup.runner("history", "--limit", "2")
        #expect(!whole.stdout.contains("more runs than"), "\(whole.stdout)")
        let cutJSON = try await setup.runner("history", "--limit", "1", "--json")
        #expect(JSONValue.parse(cutJSON.stdout) != nil && cutJSON.stderr.contains("more runs than --limit 1"))

        // --config is accepted by every command, so one alias serves them all.
        for command in [
            ["outbox"], ["outbox", "list"], ["migrate"], ["status"], ["history"], ["check"], ["db", "stop"],
        ] {
            let result = try await RunnerProcess.run(
                command + ["--config", config], environment: setup.environment, currentDirectory: setup.directory.url)
            #expect(result.status == 0, "\(command) --config: \(result.stderr)")
        }
    }

    @Test("exit codes: 2 for configuration and usage errors")
    func configurationErrors() async throws {
        let setup = try await Setup("exitcodes", jobs: "jobs:\n  job: {command: [\"true\"], schedule: \"@daily\"}\n")
        #expect(try await setup.runner("once", "nope").status == 2)
        #expect(try await setup.runner("once").status == 2)
        #expect(try await setup.runner("once", "job", "--config", "/nonexistent.yaml").status == 2)
    }

    @Test("exit code 3 when the database is unreachable, and the password never appears")
    func unreachable() async throws {
        let setup = try await Setup("unreachable", jobs: "jobs:\n  job: {command: [\"true\"], schedule: \"@daily\"}\n")
        let secret = "Sup3rS3cretPw-9f8e"
        for url in [
            "postgresql://runner:\(secret)@127.0.0.1:1/runner",
            "postgres://runner:\(secret)@127.0.0.1:1/runner?sslmode=disable&connect_timeout=2",
            "host=127.0.0.1 port=1 user=runner password=\(secret)",
        ] {
            let result = try await RunnerProcess.run(
                ["once", "job"], environment: setup.environment.merging(["DATABASE_URL": url]) { $1 })
            #expect(result.status == 3, "\(url): \(result.stderr)")
            #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret))
        }
    }

    @Test("a malformed DATABASE_URL exits 2 at once, naming the problem and never the password")
    func malformedURL() async throws {
        let setup = try await Setup("malformedurl", jobs: "jobs:\n  job: {command: [\"true\"], schedule: \"@daily\"}\n")
        let secret = "Sup3rS3cretPw-9f8e"
        for url in [
            "postgresql://u:\(secret)@[::1", "host=127.0.0.1 password='\(secret)",
            "postgresql://runner:\(secret)@127.0.0.1:1/runner?no_such_option=1",
        ] {
            let result = try await RunnerProcess.run(
                ["once", "job"], environment: setup.environment.merging(["DATABASE_URL": url]) { $1 })
            #expect(result.status == 2, "\(url): \(result.stderr)")
            #expect(result.stderr.contains("DATABASE_URL is not a valid connection string: "))
            #expect(!result.stderr.contains("retrying"))
            #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret))
        }
    }

    @Test(
        "a wrong password is refused by the server and never printed",
        .enabled(
            if: ProcessInfo.processInfo.environment["DATABASE_URL"] == nil,
            "needs the suite's own cluster, which has a role with a password"))
    func wrongPassword() async throws {
        let setup = try await Setup("password", jobs: "jobs:\n  job: {command: [\"true\"], schedule: \"@daily\"}\n")
        let wrong = "Wr0ngPassw0rd-abc123"
        let url = TestDatabase.cluster.tcpConnectionString(database: "postgres", user: "secretive", password: wrong)
        let result = try await RunnerProcess.run(
            ["once", "job"], environment: setup.environment.merging(["DATABASE_URL": url.raw]) { $1 })
        // A refused login is permanent: exit 2 at once, with what to do, no retrying.
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("password authentication failed"))
        #expect(
            result.stderr.contains("\nhint: the server refused the login: check the user and password in DATABASE_URL"))
        #expect(!result.stderr.contains("retrying"))
        #expect(!result.stderr.contains(wrong) && !result.stdout.contains(wrong))
        // The right password gets in (and then finds no runner schema: exit 2).
        let right = TestDatabase.cluster.tcpConnectionString(
            database: "postgres", user: "secretive", password: TestDatabase.secretPassword)
        let ok = try await RunnerProcess.run(
            ["history"], environment: setup.environment.merging(["DATABASE_URL": right.raw]) { $1 })
        #expect(ok.status == 2)
        #expect(ok.stderr.contains("runner migrate"))
        #expect(!ok.stderr.contains(TestDatabase.secretPassword))
    }
}
