import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
import TestSupport

/// Notifications, pause and missed slots through the CLI, as platform cron runs them: real
/// processes, a real ledger, local servers that check what they receive (issue 16).
@Suite("runner once notifies once; pause, resume, missed and status")
struct NotifyCommandTests {
    static let secret = "whsec-cli-0123456789"

    @Test("eight runner once processes at once on a failing job: one failed notification, one Sentry event")
    func eightProcessesNotifyOnce() async throws {
        let server = try await TestHTTPServer(
            routes: ["POST /hook": ["status": 200], "POST /api/7/envelope/": ["status": 200]], hmacSecret: Self.secret)
        let setup = try await CLISetup(
            "notifyeight",
            jobs: """
                jobs:
                  broken:
                    command: ["sh", "-c", "echo boom >&2; exit 1"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    retries: {max: 0}
                    notify: [{webhook: "\(server.baseURL)/hook"}]
                """,
            extraEnvironment: [
                "WEBHOOK_SECRET": Self.secret, "SENTRY_DSN": "http://k3y@127.0.0.1:\(server.port)/7",
            ])
        let results = try await withThrowingTaskGroup(of: RunnerProcess.Result.self) { group in
            for _ in 0..<8 { group.addTask { try await setup.runner("once", "broken") } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { $0.status == 1 }.count == 1, "\(results.map(\.stdout))")
        #expect(results.filter { $0.status == 0 }.count == 7)
        let requests = try server.requests()
        let hooks = requests.filter { $0["path"] == "/hook" }
        #expect(hooks.count == 1, "\(requests)")
        #expect(hooks.first?["signature_ok"] == .bool(true))
        #expect(requests.filter { $0["path"] == "/api/7/envelope/" }.count == 1)
        #expect(try await setup.count("SELECT count(*) FROM runner.effects WHERE kind = 'notification'") == 2)
        // runner status says what the job's channels last heard (the ledger's latest notify: key).
        let json = try await setup.runner("status", "--json")
        let broken = JSONValue.parse(json.stdout).flatMap { value -> JSONValue? in
            guard case .array(let items) = value else { return nil }
            return items.first { $0["job"] == "broken" }
        }
        // Two were recorded (the webhook's failed, then Sentry's event): the later one.
        let latest = try await setup.connection.query(
            "SELECT split_part(key, '|', 2) AS event FROM runner.effects WHERE kind = 'notification' ORDER BY created_at DESC LIMIT 1"
        ).first?.string("event")
        #expect(latest == "sentry")
        #expect(broken?["last_notification"]?["event"] == .string(latest ?? ""), "\(json.stdout)")
    }

    @Test("a secret in the environment and in the command's output reaches no channel")
    func secretsStayHome() async throws {
        let server = try await TestHTTPServer(
            routes: [
                "POST /hook": ["status": 200], "POST /slack": ["status": 200], "POST /api/7/envelope/": ["status": 200],
            ],
            hmacSecret: Self.secret)
        let key = "sk-live-zq9Xabcdef123456"
        let password = "pw-zq9X-0987654321"
        let setup = try await CLISetup(
            "notifysecrets",
            jobs: """
                jobs:
                  leaky:
                    command: ["sh", "-c", "echo \\"key=$MY_API_KEY\\"; echo \\"url=$PROXY_URL\\" >&2; exit 2"]
                    env: [MY_API_KEY, PROXY_URL]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    retries: {max: 0}
                    notify: [{webhook: "\(server.baseURL)/hook"}, {slack: "\(server.baseURL)/slack"}]
                """,
            extraEnvironment: [
                "WEBHOOK_SECRET": Self.secret, "SENTRY_DSN": "http://k3y@127.0.0.1:\(server.port)/7",
                "MY_API_KEY": key, "PROXY_URL": "http://user:\(password)@proxy.internal:3128",
            ])
        let result = try await setup.runner("once", "leaky")
        #expect(result.status == 1)
        let requests = try server.requests()
        #expect(requests.count == 3, "\(requests)")
        for request in requests {
            let body = request["body"]?.stringValue ?? ""
            #expect(!body.contains("zq9X") && !body.contains(Self.secret), "a secret left: \(body)")
        }
        let hook = try #require(requests.first { $0["path"] == "/hook" })
        let tail = JSONValue.parse(hook["body"]?.stringValue ?? "")?["output_tail"]?.stringValue ?? ""
        #expect(tail.contains("key=[redacted]") && tail.contains("user:[redacted]@proxy.internal"), "\(tail)")
        #expect(!(result.stdout + result.stderr).contains("zq9X"))
    }

    @Test("pause, a paused slot skipped with why, status shows it, resume runs again; missed lists what was missed")
    func pauseResumeMissed() async throws {
        let setup = try await CLISetup(
            "pausecli",
            jobs: """
                jobs:
                  tick:
                    command: ["true"]
                    schedule: "*/5 * * * *"
                    catchup: 1m
                  yearly:
                    command: ["true"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                """)
        let paused = try await setup.runner("pause", "yearly", "--until", "2h", "--reason", "db upgrade")
        #expect(paused.status == 0 && paused.stdout.hasPrefix("yearly is paused until "), "\(paused.stderr)")
        let skipped = try await setup.runner("once", "yearly")
        #expect(skipped.status == 0)
        #expect(skipped.stdout.contains("skipped: the job is paused (db upgrade) until "), "\(skipped.stdout)")
        #expect(try await setup.count("SELECT count(*) FROM runner.runs WHERE status = 'skipped'") == 1)
        let status = try await setup.runner("status")
        let row = status.stdout.split(separator: "\n").first { $0.hasPrefix("yearly ") } ?? ""
        #expect(row.contains("until "), "\(status.stdout)")
        #expect(status.stdout.split(separator: "\n").first?.contains("PAUSED") == true)
        let json = try await setup.runner("status", "--json")
        let yearly = JSONValue.parse(json.stdout).flatMap { value -> JSONValue? in
            guard case .array(let items) = value else { return nil }
            return items.first { $0["job"] == "yearly" }
        }
        #expect(yearly?["paused"]?["reason"] == "db upgrade", "\(json.stdout)")

        let resumed = try await setup.runner("resume", "yearly")
        #expect(resumed.stdout.hasPrefix("yearly is resumed"), "\(resumed.stdout)")
        // The slot was recorded skipped while paused; it stays so: the next slot runs.
        #expect(try await setup.runner("once", "yearly").stdout.contains("already ran"))
        #expect(try await setup.runner("resume", "yearly").stdout == "yearly was not paused; nothing to do\n")

        #expect(try await setup.runner("missed").stdout.hasPrefix("no missed slots in the last 7d"))
        // tick, defined an hour ago, ran 30 minutes ago and at no other slot: every other slot since
        // its definition, past its 1m catchup, is missed (the holes before that run too).
        try await setup.connection.execute(
            """
            UPDATE runner.jobs SET defined_at = now() - interval '1 hour' WHERE name = 'tick';
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, status, claimed_by, lease_seconds, finished_at, duration_ms)
            SELECT 'default', 'tick', s, to_char(s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), 'once', 'succeeded', 't', 30, s, 1
            FROM (SELECT to_timestamp(floor(extract(epoch FROM now()) / 300) * 300 - 1800) AS s) AS slot
            """)
        let missed = try await setup.runner("missed", "--job", "tick", "--json")
        guard case .array(let items)? = JSONValue.parse(missed.stdout) else {
            Issue.record("missed --json printed \(missed.stdout) \(missed.stderr)")
            return
        }
        // An hour of 5-minute slots, by where the clock stands: 11 or 12, less the one that ran.
        #expect((10...11).contains(items.count), "\(missed.stdout)")
        #expect(items.allSatisfy { $0["job"] == "tick" })
        let table = try await setup.runner("missed")
        #expect(table.stdout.hasPrefix("JOB") && table.stdout.contains("tick"), "\(table.stdout)")
        let unknown = try await setup.runner("missed", "--job", "nope")
        #expect(unknown.status == 2)
    }
}
