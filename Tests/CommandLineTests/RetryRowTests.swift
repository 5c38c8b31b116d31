import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
import TestSupport

/// Retries are rows (issue 13, rows 1-2): a failed attempt records when its successor is due;
/// whoever calls `runner once` after that claims it, under the slot's rules.
@Suite("Retries as rows")
struct RetryRowTests {
    /// The key of the hourly slot the database is in.
    static let hourSlotSQL = #"to_char(date_trunc('hour', now() AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24:00:00"Z"')"#

    static func hourSlot(_ connection: PostgresConnection) async throws -> String {
        try await connection.query("SELECT \(hourSlotSQL) AS slot").first?.string("slot") ?? ""
    }

    @Test("row 2: a process killed during its retry's backoff loses nothing: the next runner once runs the retry")
    func killedDuringBackoff() async throws {
        let scratch = try TemporaryDirectory()
        let marker = scratch.url.appendingPathComponent("tried").path
        let setup = try await CLISetup(
            "retrykilled",
            jobs: """
                jobs:
                  flaky:
                    command: ["sh", "-c", "if [ -f \(marker) ]; then echo second; else touch \(marker); exit 1; fi"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    retries: {max: 2, backoff: 1h, max_backoff: 1h}
                """)
        let before = try await setup.connection.query("SELECT \(Self.yearKey) AS slot").first?.string("slot") ?? ""
        let process = try RunnerProcess.launch(["once", "flaky"], environment: setup.environment)
        // Killed once the failure and its due retry are recorded: waiting in its backoff.
        var recorded = false
        for _ in 0..<1500 where !recorded {
            try await Task.sleep(for: .milliseconds(20))
            recorded = try await setup.count("SELECT count(*) FROM runner.runs WHERE retry_at IS NOT NULL") == 1
        }
        #expect(recorded, "the failed attempt recorded no retry")
        kill(process.processIdentifier, SIGKILL)
        try await offPool { process.waitUntilExit() }
        let due = try await setup.connection.query(
            "SELECT retry_at > now() + interval '20 minutes' AS later FROM runner.runs"
        ).first?.bool("later")
        #expect(due == true, "the retry is due after the backoff (30-60 minutes), not at once")
        // The backoff passes while nobody is running.
        try await setup.connection.execute("UPDATE runner.runs SET retry_at = now() - interval '1 second'")
        let next = try await setup.runner("once", "flaky")
        #expect(next.status == 0, "\(next.stdout) \(next.stderr)")
        let rows = try await setup.connection.query(
            "SELECT attempt, trigger, status, slot_key FROM runner.runs ORDER BY attempt")
        #expect(try rows.map { try $0.string("status") ?? "" } == ["failed", "succeeded"])
        #expect(try rows.map { try $0.string("trigger") ?? "" } == ["once", "retry"])
        #expect(try rows.map { try $0.string("slot_key") ?? "" } == [before, before + "#2"])
        // Claimed once: a further call finds the slot done.
        let again = try await setup.runner("once", "flaky")
        #expect(again.stdout.contains("already ran"))
        #expect(try await setup.count("SELECT count(*) FROM runner.runs") == 2)
    }

    @Test("row 1: a due retry of a slot the next one has overtaken is recorded skipped, superseded, never run")
    func supersededRetry() async throws {
        let setup = try await CLISetup(
            "retrysuperseded",
            jobs: """
                jobs:
                  minutely:
                    command: ["sh", "-c", "echo ran >> runs.txt"]
                    schedule: "* * * * *"
                    retries: {max: 1, backoff: 16s}
                """)
        // Two minutes ago a slot failed, its retry due; nobody ran it before the next slots began.
        try await setup.connection.execute(
            """
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, claimed_by, lease_seconds,
                                     started_at, finished_at, duration_ms, retry_at)
            SELECT 'default', 'minutely', s, to_char(s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), 'once', 1, 'failed',
                   'gone:1', 30, s, s + interval '12 s', 12000, s + interval '28 s'
            FROM (SELECT date_trunc('minute', now()) - interval '2 minutes' AS s) slot
            """)
        let result = try await setup.runner("once", "minutely")
        #expect(result.status == 0, "\(result.stderr)")
        let skipped = try await setup.connection.query(
            "SELECT attempt, outcome->>'skipped_because' AS why FROM runner.runs WHERE status = 'skipped'")
        #expect(skipped.count == 1)
        #expect(try skipped.first?.int("attempt") == 2)
        #expect(try skipped.first?.string("why")?.hasPrefix("superseded: slot ") == true)
        // The current slot ran once; the old slot's retry did not.
        let ran = try String(contentsOf: setup.directory.url.appendingPathComponent("runs.txt"), encoding: .utf8)
        #expect(ran == "ran\n")
    }

    @Test("row 1: a due retry obeys overlap skip: with a live run of the job it is recorded skipped, not run beside it")
    func retryObeysOverlap() async throws {
        let setup = try await CLISetup(
            "retryoverlap",
            jobs: """
                jobs:
                  hourly:
                    command: ["sh", "-c", "echo ran >> runs.txt"]
                    schedule: "0 * * * *"
                    retries: {max: 1, backoff: 16s}
                """)
        let slot = try await Self.hourSlot(setup.connection)
        try await setup.connection.execute(
            """
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, claimed_by, lease_seconds,
                                     started_at, finished_at, duration_ms, retry_at)
            VALUES ('default', 'hourly', date_trunc('hour', now()), \(Self.hourSlotSQL), 'once', 1, 'failed', 'gone:1', 30,
                    now() - interval '1 minute', now() - interval '50 s', 10000, now() - interval '1 s');
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, claimed_by, lease_seconds,
                                     started_at, heartbeat_at)
            VALUES ('default', 'hourly', now(), 'live', 'once', 1, 'running', 'busy:2', 3600, now(), now());
            """)
        let result = try await setup.runner("once", "hourly")
        guard try await Self.hourSlot(setup.connection) == slot else { return }  // an hour boundary passed
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        let retry = try #require(
            try await setup.connection.query(
                "SELECT status, outcome->>'skipped_because' AS why FROM runner.runs WHERE slot_key = $1",
                [PostgresValue(slot + "#2")]
            ).first)
        #expect(try retry.string("status") == "skipped")
        #expect(try retry.string("why")?.contains("still running") == true)
        #expect(!FileManager.default.fileExists(atPath: setup.directory.url.appendingPathComponent("runs.txt").path))
    }

    /// This year's slot of `0 0 1 1 *` in UTC, and its key: one slot for the whole year, so no
    /// boundary passes while a test runs.
    static let yearSlot = "date_trunc('year', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    static let yearKey = #"to_char(date_trunc('year', now() AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"#

    /// Inserts attempt `attempt` of this year's slot of `job`.
    static func insertAttempt(
        _ setup: CLISetup, job: String, attempt: Int, status: String, retryDue: String? = nil,
        heartbeat: String = "now() - interval '50 s'", key: String? = nil, origin: String = "schedule"
    ) async throws {
        let slotKey = key.map { "'\($0)'" } ?? (attempt == 1 ? yearKey : "\(yearKey) || '#\(attempt)'")
        let finished = status == "running" ? "NULL" : "now() - interval '50 s'"
        try await setup.connection.execute(
            """
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, claimed_by, lease_seconds,
                                     started_at, heartbeat_at, finished_at, duration_ms, retry_at, origin)
            VALUES ('default', '\(job)', \(yearSlot), \(slotKey), \(attempt == 1 ? "'once'" : "'retry'"), \(attempt), '\(status)',
                    'gone:1', 30, now() - interval '1 minute', \(heartbeat), \(finished),
                    \(status == "running" ? "NULL" : "10000"), \(retryDue ?? "NULL"), '\(origin)')
            """)
    }

    static func attempts(_ setup: CLISetup, job: String) async throws -> [String] {
        try await setup.connection.query(
            "SELECT attempt, status FROM runner.runs WHERE job = $1 ORDER BY attempt, id", [PostgresValue(job)]
        ).map { "\(try $0.int("attempt") ?? 0):\(try $0.string("status") ?? "")" }
    }

    static let yearly = """
        command: ["sh", "-c", "echo ran >> runs.txt"]
            schedule: "0 0 1 1 *"
            catchup: 400d
            retries: {max: 2, backoff: 1s}
        """

    func ran(_ setup: CLISetup) -> String {
        (try? String(contentsOf: setup.directory.url.appendingPathComponent("runs.txt"), encoding: .utf8)) ?? ""
    }

    @Test(
        "a retry killed mid-run (its heartbeat stale) is marked abandoned and the next call makes the attempt after it")
    func killedRetryIsRetried() async throws {
        let setup = try await CLISetup("retryabandoned", jobs: "jobs:\n  flaky:\n    \(Self.yearly)\n")
        try await Self.insertAttempt(
            setup, job: "flaky", attempt: 1, status: "failed", retryDue: "now() - interval '40 s'")
        try await Self.insertAttempt(
            setup, job: "flaky", attempt: 2, status: "running", heartbeat: "now() - interval '10 minutes'")
        let result = try await setup.runner("once", "flaky")
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect(try await Self.attempts(setup, job: "flaky") == ["1:failed", "2:abandoned", "3:succeeded"])
        #expect(ran(setup) == "ran\n")
        #expect(result.stdout.contains("(attempt 3)"))
    }

    @Test("a manual run's retry never makes the slot skip, and records no retry for a later call")
    func manualRetryHoldsNoSlot() async throws {
        let setup = try await CLISetup(
            "manualretry", jobs: "jobs:\n  job:\n    \(Self.yearly)\n    overlap: skip\n")
        try await Self.insertAttempt(
            setup, job: "job", attempt: 2, status: "running", heartbeat: "now()", key: "manual:abc#2", origin: "manual")
        let result = try await setup.runner("once", "job")
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("succeeded"), "\(result.stdout)")
        #expect(ran(setup) == "ran\n")

        // A failing manual run retries in its own process only: no due time for anyone else.
        _ = try setup.directory.write(
            "jobs.yaml",
            "jobs:\n  job:\n    command: [\"false\"]\n    schedule: \"0 0 1 1 *\"\n    retries: {max: 1, backoff: 10ms}\n"
        )
        let manual = try await setup.runner("once", "job", "--force")
        #expect(manual.status == 1)
        #expect(
            try await setup.count(
                "SELECT count(*) FROM runner.runs WHERE origin = 'manual' AND status = 'failed'") == 2)
        #expect(try await setup.count("SELECT count(*) FROM runner.runs WHERE retry_at IS NOT NULL") == 0)
    }

    @Test(
        "a call past catchup for a slot that ran reports its latest attempt; the retry it was due is recorded skipped")
    func lateCallReportsLatest() async throws {
        let setup = try await CLISetup(
            "latereport",
            jobs:
                "jobs:\n  job:\n    command: [\"true\"]\n    schedule: \"0 0 1 1 *\"\n    catchup: 1h\n    retries: {max: 1, backoff: 1s}\n"
        )
        try await Self.insertAttempt(
            setup, job: "job", attempt: 1, status: "failed", retryDue: "now() - interval '40 s'")
        let result = try await setup.runner("once", "job")
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("already ran in slot"), "\(result.stdout)")
        #expect(result.stdout.contains("(run 2, attempt 2, skipped)"), "\(result.stdout)")
        #expect(!result.stdout.contains("missed"))
        #expect(try await Self.attempts(setup, job: "job") == ["1:failed", "2:skipped"])
        let why = try await setup.connection.query(
            "SELECT outcome->>'skipped_because' AS why FROM runner.runs WHERE attempt = 2"
        ).first?.string("why")
        #expect(why?.hasPrefix("past catchup") == true, "\(why ?? "nil")")
        #expect(try await setup.count("SELECT count(*) FROM runner.runs WHERE status = 'missed'") == 0)
    }

    @Test("a call in time that finds its slot recorded missed (a late caller came first) says missed and runs nothing")
    func slotAlreadyMissed() async throws {
        let setup = try await CLISetup("alreadymissed", jobs: "jobs:\n  job:\n    \(Self.yearly)\n")
        try await Self.insertAttempt(setup, job: "job", attempt: 1, status: "missed")
        let result = try await setup.runner("once", "job")
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("missed"), "\(result.stdout)")
        #expect(ran(setup).isEmpty)
        #expect(try await Self.attempts(setup, job: "job") == ["1:missed"])
    }

    @Test("a retry due after the next slot begins is recorded skipped at once, not slept to")
    func retryPastNextSlotIsNotAwaited() async throws {
        let setup = try await CLISetup(
            "retrypastnext",
            jobs:
                "jobs:\n  hourly:\n    command: [\"false\"]\n    schedule: \"0 * * * *\"\n    retries: {max: 1, backoff: 2h, max_backoff: 2h}\n"
        )
        // The backoff (1 to 2 hours) ends after the next hourly slot: the call ends now, exit 1.
        let result = try await setup.runner("once", "hourly")
        #expect(result.status == 1, "\(result.stdout) \(result.stderr)")
        #expect(try await Self.attempts(setup, job: "hourly") == ["1:failed", "2:skipped"])
        let why = try await setup.connection.query(
            "SELECT outcome->>'skipped_because' AS why FROM runner.runs WHERE attempt = 2"
        ).first?.string("why")
        #expect(why?.hasPrefix("superseded: slot ") == true, "\(why ?? "nil")")
    }

    @Test("a retry made by a later call is pinged: start, then its outcome")
    func laterRetryPings() async throws {
        let server = try await TestHTTPServer(routes: [
            "GET /ping/r/start": ["status": 200], "POST /ping/r": ["status": 200], "POST /ping/r/fail": ["status": 200],
        ])
        let setup = try await CLISetup(
            "retryping", jobs: "jobs:\n  job:\n    \(Self.yearly)\n    ping_url: \(server.baseURL)/ping/r\n")
        try await Self.insertAttempt(
            setup, job: "job", attempt: 1, status: "failed", retryDue: "now() - interval '40 s'")
        let result = try await setup.runner("once", "job")
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        let requests = try server.requests().map { request -> String in
            guard case .string(let method)? = request["method"], case .string(let path)? = request["path"] else {
                return "\(request)"
            }
            return "\(method) \(path)"
        }
        #expect(requests == ["GET /ping/r/start", "POST /ping/r"])
        // Nothing left to do: no further ping.
        #expect(try await setup.runner("once", "job").stdout.contains("nothing to do"))
        #expect(try server.requests().count == 2)
    }
}
