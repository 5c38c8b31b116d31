import Foundation
@testable import JobTable
import Logging
import StandardAgents
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Ledger
@testable import Outbox
import TestSupport

/// Notifications on state changes, in process on an injected clock, against a real ledger and
/// local servers that check what they receive as the real receivers would (issue 16).
@Suite("Notifications: failed, recovered, missed, running long; Slack, webhook, Sentry, email")
struct NotifierTests {
    static func at(_ text: String) -> Date { InstantFormat.parse(text) ?? .distantPast }
    static let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
    static let secret = "whsec-test-0123456789"

    /// A ledger, a job table whose `notify:` points at `server`, and a runner of it whose clock
    /// the test sets.
    struct Setup {
        let connection: PostgresConnection
        let table: JobTable
        let executor: RunExecutor
        let clock: Locked<Date>
        let folder: TemporaryDirectory

        init(_ label: String, jobs: String, environment extra: [String: String] = [:]) async throws {
            let (_, connection) = try await TestDatabase.migrated(label)
            folder = try TemporaryDirectory()
            let environment = ["PATH": "/usr/bin:/bin", "WEBHOOK_SECRET": NotifierTests.secret, "DIR": folder.url.path]
                .merging(extra) { $1 }
            table = try JobTableLoader(environment: environment, agents: .standard).load(text: "jobs:\n" + jobs, path: "jobs.yaml")
            executor = RunExecutor(
                ledger: Ledger(connection: connection), agents: .standard, logger: NotifierTests.quiet,
                heartbeatInterval: .seconds(1), environment: environment)
            clock = Locked(Date())
            self.connection = connection
        }

        /// `runner once JOB` at `instant`; `process`: as another process would (a runner of its
        /// own, which has attempted nothing yet).
        func once(_ job: String, at instant: Date, process: RunExecutor? = nil) async throws -> OnceRunner.Outcome {
            clock.withLock { $0 = instant }
            let runner = OnceRunner(executor: process ?? executor, now: { [clock] in clock.withLock { $0 } })
            return try await runner.run(try #require(table.job(named: job)), table: table.jobs)
        }

        /// Sends what is pending, as the next process's first pass would (a loaded machine may
        /// leave a notification past a run's 5 s budget: recorded, sent by the next pass).
        func flush() async {
            await Notifier(ledger: executor.ledger, environment: executor.environment, logger: NotifierTests.quiet)
                .finishPending(jobs: table.jobs)
        }

        func write(_ name: String, _ text: String) throws {
            try text.write(to: folder.url.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
    }

    /// The requests of `event`, in order.
    static func requests(_ server: TestHTTPServer, event: String) throws -> [JSONValue] {
        try server.requests().filter { JSONValue.parse($0["body"]?.stringValue ?? "")?["event"]?.stringValue == event }
    }

    @Test("failed, failed, succeeded: one failed notification and one recovered, signed as a receiver checks")
    func failedThenRecovered() async throws {
        let server = try await TestHTTPServer(routes: ["POST /hook": ["status": 200]], hmacSecret: Self.secret)
        let setup = try await Setup(
            "notifyfailed",
            jobs: """
                  flaky:
                    command: ["sh", "-c", "echo doing; exit $(cat \\"$DIR/code\\")"]
                    env: [DIR]
                    schedule: "*/30 * * * *"
                    retries: {max: 0}
                    notify: [{webhook: "\(server.baseURL)/hook", events: [failed, recovered]}]
                """)
        for (time, code) in [("10:00:05", "3"), ("10:30:05", "3"), ("11:00:05", "0")] {
            try setup.write("code", code)
            _ = try await setup.once("flaky", at: Self.at("2026-05-01T\(time)Z"))
        }
        let requests = try server.requests()
        let events = requests.compactMap { JSONValue.parse($0["body"]?.stringValue ?? "")?["event"]?.stringValue }
        #expect(events == ["failed", "recovered"], "\(requests)")
        #expect(requests.allSatisfy { $0["signature_ok"] == .bool(true) }, "the receiver's HMAC check: \(requests)")
        let failed = try #require(JSONValue.parse(requests.first?["body"]?.stringValue ?? ""))
        #expect(failed["job"] == "flaky" && failed["slot"] == "2026-05-01T10:00:00Z")
        #expect(failed["failure_streak"] == .number(1) && failed["status"] == "failed")
        #expect(failed["error"]?.stringValue?.hasPrefix("exit code 3") == true)
        #expect(failed["output_tail"]?.stringValue?.contains("doing") == true)
        #expect(requests.first?["headers"]?["X-Runner-Event"] == "failed")
        let recovered = try #require(JSONValue.parse(requests.last?["body"]?.stringValue ?? ""))
        #expect(recovered["slot"] == "2026-05-01T11:00:00Z")

        // Still failing a day later: `repeat_after` (24h) says it again, once.
        try setup.write("code", "3")
        for time in ["2026-05-02T10:00:05Z", "2026-05-03T10:30:05Z", "2026-05-03T11:00:05Z"] {
            _ = try await setup.once("flaky", at: Self.at(time))
        }
        #expect(try Self.requests(server, event: "failed").count == 3, "a new streak, then one repeat")
    }

    @Test("a failure whose retry is given up (due after the next slot) is still reported failed, once")
    func failedWithRetryGivenUp() async throws {
        let server = try await TestHTTPServer(routes: ["POST /hook": ["status": 200]], hmacSecret: Self.secret)
        let setup = try await Setup(
            "notifygivenup",
            jobs: """
                  hourly:
                    command: ["false"]
                    schedule: "0 * * * *"
                    retries: {max: 2, backoff: 2h, max_backoff: 4h}
                    notify: [{webhook: "\(server.baseURL)/hook"}]
                """)
        _ = try await setup.once("hourly", at: Self.at("2026-05-01T10:00:05Z"))
        let statuses = try await setup.connection.query("SELECT status FROM runner.runs ORDER BY id").map {
            try $0.string("status") ?? ""
        }
        #expect(statuses == ["failed", "skipped"], "the retry was given up: \(statuses)")
        let all = try server.requests()
        #expect(try Self.requests(server, event: "failed").count == 1, "\(all)")
    }

    @Test(
        "a shutdown's interrupted neither breaks nor extends a streak: failed, interrupted, failed says failed once; a success then recovers"
    )
    func interruptedInAStreak() async throws {
        let server = try await TestHTTPServer(routes: ["POST /hook": ["status": 200]], hmacSecret: Self.secret)
        let setup = try await Setup(
            "notifyinterrupted",
            jobs: """
                  half:
                    command: ["true"]
                    schedule: "*/30 * * * *"
                    notify: [{webhook: "\(server.baseURL)/hook"}]
                """)
        let job = try #require(setup.table.job(named: "half"))
        let notifier = setup.executor.notifier
        for (slot, status) in [
            ("10:00", "failed"), ("10:30", "interrupted"), ("11:00", "failed"), ("11:30", "succeeded"),
        ] {
            let id = try #require(
                try await setup.connection.query(
                    """
                    INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, status, claimed_by, lease_seconds, finished_at, duration_ms)
                    VALUES ('default', 'half', $1::timestamptz, $2, 'once', $3, 't', 30, $1::timestamptz, 5) RETURNING id
                    """,
                    [
                        .timestamp(Self.at("2026-05-01T\(slot):00Z")), PostgresValue("2026-05-01T\(slot):00Z"),
                        PostgresValue(status),
                    ]
                ).first?.int64("id"))
            let record = try #require(try await setup.executor.ledger.run(id: id))
            await notifier.afterRun(record, job: job, now: Self.at("2026-05-01T\(slot):05Z"))
        }
        await setup.flush()
        let events = try server.requests().compactMap {
            JSONValue.parse($0["body"]?.stringValue ?? "")?["event"]?.stringValue
        }
        // (A loaded machine may send one of them in the flush, after the other: order is not the point.)
        #expect(events.sorted() == ["failed", "recovered"], "\(events)")
        let recovered = try #require(
            JSONValue.parse(try Self.requests(server, event: "recovered").first?["body"]?.stringValue ?? ""))
        #expect(recovered["failure_streak"] == .number(2))
    }

    @Test(
        "a streak's first failure that nobody reported (its process was killed) is reported by the next failure, once")
    func unreportedFirstFailure() async throws {
        let server = try await TestHTTPServer(routes: ["POST /hook": ["status": 200]], hmacSecret: Self.secret)
        let setup = try await Setup(
            "notifyunreported",
            jobs: """
                  half:
                    command: ["true"]
                    schedule: "*/30 * * * *"
                    notify: [{webhook: "\(server.baseURL)/hook"}]
                """)
        let job = try #require(setup.table.job(named: "half"))
        var records: [RunRecord] = []
        for (slot, status) in [("09:30", "succeeded"), ("10:00", "failed"), ("10:30", "failed"), ("11:00", "failed")] {
            let id = try #require(
                try await setup.connection.query(
                    """
                    INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, status, claimed_by, lease_seconds, finished_at, duration_ms)
                    VALUES ('default', 'half', $1::timestamptz, $2, 'once', $3, 't', 30, $1::timestamptz, 5) RETURNING id
                    """,
                    [
                        .timestamp(Self.at("2026-05-01T\(slot):00Z")), PostgresValue("2026-05-01T\(slot):00Z"),
                        PostgresValue(status),
                    ]
                ).first?.int64("id"))
            records.append(try #require(try await setup.executor.ledger.run(id: id)))
        }
        // What runner status shows: three failed slots since the last success.
        #expect(
            try await setup.executor.ledger.failureStreaks(jobs: ["half", "never-ran"]) == ["half": 3, "never-ran": 0])
        // 10:00's process died before it could tell anyone; 10:30 and 11:00 do.
        await setup.executor.notifier.afterRun(records[2], job: job, now: Self.at("2026-05-01T10:30:05Z"))
        await setup.executor.notifier.afterRun(records[3], job: job, now: Self.at("2026-05-01T11:00:05Z"))
        await setup.flush()
        let failed = try Self.requests(server, event: "failed")
        #expect(failed.count == 1, "\(failed)")
        let body = try #require(JSONValue.parse(failed.first?["body"]?.stringValue ?? ""))
        #expect(body["slot"] == "2026-05-01T10:30:00Z" && body["failure_streak"] == .number(2))
    }

    @Test(
        "without WEBHOOK_SECRET a webhook notification is never sent unsigned: it waits, pending; a refusing channel gives up after 10 attempts"
    )
    func webhookWaitsForItsSecret() async throws {
        let server = try await TestHTTPServer(routes: ["POST /hook": ["status": 200]])
        let setup = try await Setup(
            "notifynosecret",
            jobs: """
                  flaky:
                    command: ["false"]
                    schedule: "*/30 * * * *"
                    retries: {max: 0}
                    notify: [{webhook: "\(server.baseURL)/hook"}]
                """, environment: ["WEBHOOK_SECRET": ""])
        _ = try await setup.once("flaky", at: Self.at("2026-05-01T10:00:05Z"))
        #expect(try server.requests().isEmpty)
        let pending = try await setup.connection.query("SELECT status FROM runner.effects WHERE kind = 'notification'")
        #expect(try pending.map { try $0.string("status") ?? "" } == ["pending"])

        // Ten attempts refused with 5xx: the next pass settles it failed instead of retrying forever.
        try await setup.connection.execute("UPDATE runner.effects SET attempts = 10 WHERE kind = 'notification'")
        await setup.executor.notifier.finishPending(jobs: setup.table.jobs)
        let settled = try await setup.connection.query(
            "SELECT status, last_error FROM runner.effects WHERE kind = 'notification'")
        #expect(try settled.first?.string("status") == "failed")
        #expect(try settled.first?.string("last_error") == "not sent after 10 attempts")
    }

    /// A half-hourly job (catchup 10m) that tells a webhook everything, beside `more` jobs.
    static func halfHourly(_ label: String, more: String) async throws -> (TestHTTPServer, Setup) {
        let server = try await TestHTTPServer(routes: ["POST /hook": ["status": 200]], hmacSecret: Self.secret)
        let setup = try await Setup(
            label,
            jobs: """
                  halfhourly:
                    command: ["true"]
                    schedule: "*/30 * * * *"
                    catchup: 10m
                    notify: [{webhook: "\(server.baseURL)/hook"}]

                """ + more)
        return (server, setup)
    }

    @Test("platform cron stopped for 3 hours: the right slots are missed, one notification each, not one per check")
    func missedSlots() async throws {
        let (server, setup) = try await Self.halfHourly(
            "notifymissed",
            more: """
                  other:
                    command: ["true"]
                    schedule: "*/5 * * * *"
                """)
        _ = try await setup.once("halfhourly", at: Self.at("2026-05-01T10:00:05Z"))
        // Cron comes back at 13:05 (any job's runner once looks): 10:30 to 12:30 passed their catchup.
        _ = try await setup.once("other", at: Self.at("2026-05-01T13:05:00Z"))
        _ = try await setup.once("halfhourly", at: Self.at("2026-05-01T13:05:30Z"))
        _ = try await setup.once("halfhourly", at: Self.at("2026-05-01T13:06:00Z"))
        let slots = try Self.requests(server, event: "missed").compactMap {
            JSONValue.parse($0["body"]?.stringValue ?? "")?["slot"]?.stringValue
        }
        #expect(
            slots.sorted() == ["10:30", "11:00", "11:30", "12:00", "12:30"].map { "2026-05-01T\($0):00Z" }, "\(slots)")
        let rows = try await setup.connection.query(
            "SELECT slot FROM runner.runs WHERE job = 'halfhourly' AND status = 'missed' ORDER BY slot")
        #expect(rows.count == 5)
        // 13:00 itself ran (within its catchup), and a job that never ran missed nothing.
        let ran = try await setup.connection.query(
            "SELECT count(*) AS n FROM runner.runs WHERE job = 'halfhourly' AND status = 'succeeded'")
        #expect(try ran.first?.int("n") == 2)
        #expect(
            try await setup.connection.query(
                "SELECT count(*) AS n FROM runner.runs WHERE job = 'other' AND status = 'missed'"
            )
            .first?.int("n") == 0)
    }

    @Test("a paused job's slots are skipped (reason paused), raise no missed, and count from the pause on")
    func pausedIsNotMissed() async throws {
        let (server, setup) = try await Self.halfHourly("notifypaused", more: "")
        _ = try await setup.once("halfhourly", at: Self.at("2026-05-01T10:00:05Z"))
        // Paused from 10:15 to 11:45: 10:30, 11:00 and 11:30 are the pause's; 12:00 and 12:30 missed.
        try await setup.connection.execute(
            """
            INSERT INTO runner.pauses (namespace, job, paused_at, reason, paused_by, resumed_at)
            VALUES ('default', 'halfhourly', '2026-05-01T10:15:00Z', 'maintenance', 'test', '2026-05-01T11:45:00Z')
            """)
        _ = try await setup.once("halfhourly", at: Self.at("2026-05-01T13:05:00Z"))
        let rows = try await setup.connection.query(
            "SELECT slot, status, outcome->>'skipped_because' AS why FROM runner.runs ORDER BY slot")
        let statuses = try rows.map {
            "\(Ledger.slotKey(for: try $0.date("slot") ?? .distantPast)) \(try $0.string("status") ?? "")"
        }
        #expect(
            statuses == [
                "2026-05-01T10:00:00Z succeeded", "2026-05-01T10:30:00Z skipped", "2026-05-01T11:00:00Z skipped",
                "2026-05-01T11:30:00Z skipped", "2026-05-01T12:00:00Z missed", "2026-05-01T12:30:00Z missed",
                "2026-05-01T13:00:00Z succeeded",
            ], "\(statuses)")
        #expect(try rows.compactMap { try $0.string("why") } == ["paused", "paused", "paused"])
        #expect(try Self.requests(server, event: "missed").count == 2)

        // Paused now: the slot is recorded skipped, not run, and nothing is missed.
        _ = try await setup.executor.ledger.pause(job: "halfhourly", until: nil, reason: "deploy", by: "test")
        let outcome = try await setup.once("halfhourly", at: Self.at("2026-05-01T13:30:05Z"))
        guard case .paused(let runID, _, let pause) = outcome else {
            Issue.record("a paused job ran: \(outcome)")
            return
        }
        #expect(runID != nil && pause.reason == "deploy")
    }

    @Test("running_long fires once while the run goes on; the run is not stopped")
    func runningLong() async throws {
        let server = try await TestHTTPServer(routes: ["POST /hook": ["status": 200]], hmacSecret: Self.secret)
        let setup = try await Setup(
            "notifylong",
            jobs: """
                  slow:
                    command: ["sleep", "2"]
                    schedule: "*/30 * * * *"
                    warn_after: 300ms
                    notify: [{webhook: "\(server.baseURL)/hook", events: [running_long]}]
                """)
        let outcome = try await setup.once("slow", at: Self.at("2026-05-01T10:00:05Z"))
        guard case .ran(let record, _) = outcome else {
            Issue.record("\(outcome)")
            return
        }
        #expect(record.status == .succeeded)
        let long = try Self.requests(server, event: "running_long")
        let all = try server.requests()
        #expect(long.count == 1, "\(all)")
        let body = try #require(JSONValue.parse(long.first?["body"]?.stringValue ?? ""))
        #expect(body["status"] == "running" && body["run_id"] == .number(Double(record.id)))
    }

    @Test("Slack's JSON with escaped values, Sentry's envelope read by Sentry's SDK, email through delivery")
    func channelFormats() async throws {
        let server = try await TestHTTPServer(routes: [
            "POST /slack": ["status": 200], "POST /api/42/envelope/": ["status": 200, "body": ["id": "x"]],
        ])
        let setup = try await Setup(
            "notifyformats",
            jobs: """
                  broken:
                    command: ["sh", "-c", "echo '<!channel> <http://evil|click> *bold* https://evil.example' >&2; exit 4"]
                    schedule: "*/30 * * * *"
                    retries: {max: 0}
                    notify: [{slack: "\(server.baseURL)/slack"}, {email: "ops@example.com, oncall@example.com"}]
                """, environment: ["SENTRY_DSN": "http://publickey@127.0.0.1:\(server.port)/42"])
        _ = try await setup.once("broken", at: Self.at("2026-05-01T10:00:05Z"))
        let requests = try server.requests()
        let slack = try #require(requests.first { $0["path"] == "/slack" }, "\(requests)")
        let message = try #require(JSONValue.parse(slack["body"]?.stringValue ?? ""))
        #expect(message["text"]?.stringValue?.contains("broken failed") == true)
        guard case .array(let blocks)? = message["blocks"] else {
            Issue.record("no blocks: \(message)")
            return
        }
        #expect(blocks.count >= 3)
        let text = message.text
        #expect(text.contains("&lt;!channel&gt;") && !text.contains("<!channel>"), "a value made a mention: \(text)")
        // The error (the command's stderr) in a code block: no formatting, no link; nothing unfurled.
        let error = blocks.compactMap { $0["text"]?["text"]?.stringValue }.first { $0.hasPrefix("*Error*") }
        #expect(error?.hasPrefix("*Error*\n```\n") == true && error?.hasSuffix("\n```") == true, "\(blocks)")
        #expect(error?.contains("*bold*") == true)
        #expect(message["unfurl_links"] == .bool(false) && message["unfurl_media"] == .bool(false))

        let sentry = try #require(requests.first { $0["path"] == "/api/42/envelope/" }, "\(requests)")
        #expect(sentry["sentry_error"] == nil, "\(sentry)")
        #expect(sentry["headers"]?["X-Sentry-Auth"]?.stringValue?.contains("sentry_key=publickey") == true)
        guard case .array(let events)? = sentry["sentry"]?["events"], let event = events.first else {
            Issue.record("Sentry's SDK found no event: \(sentry)")
            return
        }
        #expect(event["fingerprint"] == ["runner", "broken"])
        #expect(event["level"] == "error")
        #expect(event["contexts"]?["runner"]?["job"] == "broken")
        #expect(event["contexts"]?["runner"]?["error"]?.stringValue?.hasPrefix("exit code 4") == true)

        // No provider: the email is a draft in the outbox, to both recipients.
        let drafts = try await setup.connection.query(
            "SELECT status, target, payload->>'subject' AS subject FROM runner.effects WHERE kind = 'email'")
        #expect(drafts.count == 1)
        #expect(try drafts.first?.string("status") == "draft")
        #expect(try drafts.first?.string("target") == "ops@example.com, oncall@example.com")
        #expect(try drafts.first?.string("subject")?.hasPrefix("[runner] broken failed") == true)
    }

    @Test(
        "a channel that is down never fails or holds the run; its notification stays pending and the next run sends it")
    func channelDown() async throws {
        let server = try await TestHTTPServer(
            routes: ["POST /hook": [["status": 503], ["status": 200]]], hmacSecret: Self.secret)
        let setup = try await Setup(
            "notifydown",
            jobs: """
                  fine:
                    command: ["true"]
                    schedule: "*/30 * * * *"
                  flaky:
                    command: ["false"]
                    schedule: "*/30 * * * *"
                    retries: {max: 0}
                    notify: [{webhook: "\(server.baseURL)/hook"}]
                """)
        let outcome = try await setup.once("flaky", at: Self.at("2026-05-01T10:00:05Z"))
        guard case .ran(let record, _) = outcome else {
            Issue.record("\(outcome)")
            return
        }
        #expect(record.status == .failed)
        let pending = try await setup.connection.query(
            "SELECT status, last_error FROM runner.effects WHERE kind = 'notification'")
        #expect(try pending.first?.string("status") == "pending")
        #expect(try pending.first?.string("last_error")?.contains("HTTP 503") == true)
        // Any job's next run (another process) sends what is pending.
        let next = RunExecutor(
            ledger: Ledger(connection: setup.connection), agents: .standard, logger: Self.quiet, heartbeatInterval: .seconds(1),
            environment: setup.executor.environment)
        _ = try await setup.once("fine", at: Self.at("2026-05-01T10:05:00Z"), process: next)
        let sent = try await setup.connection.query("SELECT status FROM runner.effects WHERE kind = 'notification'")
        #expect(try sent.first?.string("status") == "sent")
        let requests = try server.requests()
        #expect(requests.count == 2, "\(requests.map { "\($0["path"] ?? .null) \($0["at"] ?? .null)" })")
    }

    @Test(
        "notifications of a job another version of the table has wait without holding up the rest, and are settled an hour on"
    )
    func waitingNotificationsDoNotBlock() async throws {
        let server = try await TestHTTPServer(routes: ["POST /hook": ["status": 503]], hmacSecret: Self.secret)
        let setup = try await Setup(
            "notifywaiting",
            jobs: """
                  here:
                    command: ["false"]
                    schedule: "*/30 * * * *"
                    retries: {max: 0}
                    notify: [{webhook: "\(server.baseURL)/hook", events: [failed]}]
                """)
        // A job this table lacks but another version of it has (a rolling deploy), with more
        // pending notifications than one page holds, recorded first.
        let ledger = setup.executor.ledger
        try await ledger.registerJobs([("elsewhere", "@daily", "UTC", nil)])
        let effects = Effects(ledger: ledger)
        for index in 0..<25 {
            _ = try await effects.record(
                kind: Notifier.kind.name, key: "notify:elsewhere|failed|slot-\(index)|webhook-00000000", runID: nil,
                target: "webhook-00000000", payload: ["event": "failed"])
        }
        _ = try await setup.once("here", at: Self.at("2026-05-01T10:00:05Z"))
        try server.folder.write("routes.json", #"{"POST /hook": {"status": 200}}"#)
        await setup.flush()
        let statuses = try await setup.connection.query(
            "SELECT split_part(key, '|', 1) AS job, status, count(*) AS n FROM runner.effects GROUP BY 1, 2 ORDER BY 1"
        ).map { "\(try $0.string("job") ?? "") \(try $0.string("status") ?? "") \(try $0.int("n") ?? 0)" }
        #expect(statuses == ["notify:elsewhere pending 25", "notify:here sent 1"], "\(statuses)")
        // An hour on, no table that has the job sent them: settled, with why.
        try await setup.connection.execute("UPDATE runner.effects SET created_at = now() - interval '2 hours'")
        await setup.flush()
        let settled = try await setup.connection.query(
            "SELECT DISTINCT status, last_error FROM runner.effects WHERE key LIKE 'notify:elsewhere|%'")
        #expect(settled.count == 1)
        #expect(try settled.first?.string("status") == "failed")
        #expect(try settled.first?.string("last_error")?.contains("job elsewhere is not in the job table") == true)
    }
}
