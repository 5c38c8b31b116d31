import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import EmbeddedPostgres
@testable import Ledger
import TestSupport

/// The ledger's rules under random interleavings (issue 13): `runner once`, `--force` and
/// `--dry-run` processes, failing commands and kill -9, over an hour of the database's clock.
///
/// The database is the clock, so the hour is simulated there: a cluster of its own runs under
/// libfaketime, whose offset it reads from a file at every call; the test moves it forward a
/// minute per step (real time runs on between steps). The runners' host clock stays real.
@Suite("The ledger over a simulated hour, property-based")
struct LedgerPropertyTests {
    static let clockFolder = URL(fileURLWithPath: "/tmp/runner-test-clock-\(getuid())")
    static let offsetFile = clockFolder.appendingPathComponent("offset")
    static let library = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"

    static let cluster = EmbeddedPostgres(
        home: TestDatabase.packageRoot.appendingPathComponent(".build/test-postgres-clock"), fast: true,
        serverEnvironment: [
            "LD_PRELOAD": library, "FAKETIME_TIMESTAMP_FILE": offsetFile.path, "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        ])

    /// The database's clock is `offset` seconds ahead of the host's from now on.
    static func setClock(_ offset: Int) throws {
        try FileManager.default.createDirectory(
            at: clockFolder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        // Readable by the server's user before it replaces the old file: never a moment unreadable.
        let next = clockFolder.appendingPathComponent("offset.next")
        try Data("+\(offset)\n".utf8).write(to: next)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: next.path)
        guard rename(next.path, offsetFile.path) == 0 else { throw TestDatabaseError("cannot move \(next.path)") }
    }

    /// The slot grid (`*/5 * * * *`) and the job's rules, as the property checks need them.
    static let slotSeconds = 300
    static let catchupSeconds = 240
    static let maxRetries = 2

    typealias Launched = (process: Process, log: String)

    @Test(
        "random once, --force, --dry-run, failures and kill -9 over an hour: one live run, no lost retry, a true summary"
    )
    func simulatedHour() async throws {
        try #require(FileManager.default.fileExists(atPath: Self.library), "libfaketime is missing: run scripts/setup")
        let seed =
            ProcessInfo.processInfo.environment["RUNNER_PROPERTY_SEED"].flatMap(UInt64.init)
            ?? UInt64.random(in: 1...UInt64(UInt32.max))
        let context = "seed \(seed) (RUNNER_PROPERTY_SEED=\(seed) repeats its choices)"
        print("ledger property: \(context)")
        try Self.setClock(0)
        try await Self.cluster.start()
        let name = "t_property_\(seed)"
        let admin = try await PostgresConnection.connect(Self.cluster.connectionString(database: "postgres"))
        try await admin.execute("DROP DATABASE IF EXISTS \(name)")
        try await admin.execute("CREATE DATABASE \(name)")
        let processes = Locked<[Launched]>([])
        try await withCleanup {
            let url = Self.cluster.connectionString(database: name)
            let connection = try await PostgresConnection.connect(url)
            try await withCleanup {
                try await Self.hour(
                    seed: seed, url: url, connection: connection, context: context, processes: processes)
            } cleanup: {
                await connection.close()
            }
        } cleanup: {
            // Whatever failed: no runner left running, the clock back, the cluster stopped.
            for entry in processes.withLock({ $0 }) where entry.process.isRunning {
                kill(entry.process.processIdentifier, SIGKILL)
            }
            try? Self.setClock(0)
            try? await admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            await admin.close()
            try? await Self.cluster.stop()
        }
    }

    static func hour(
        seed: UInt64, url: ConnectionString, connection: PostgresConnection, context: String,
        processes: Locked<[Launched]>
    ) async throws {
        _ = try await Migrator(connection: connection).migrate()
        let scratch = try TemporaryDirectory()
        let events = scratch.url.appendingPathComponent("events").path
        // Two runs in three fail (by run id), each sleeps under a second and logs its start and end.
        let script =
            "echo start $RUNNER_RUN_ID >> \(events); sleep 0.$((RUNNER_RUN_ID % 9 + 1)); "
            + "echo end $RUNNER_RUN_ID >> \(events); [ $((RUNNER_RUN_ID % 3)) -eq 0 ]"
        let config = try scratch.write(
            "jobs.yaml",
            """
            jobs:
              flaky:
                command: ["sh", "-c", "\(script)"]
                schedule: "*/5 * * * *"
                catchup: \(catchupSeconds)s
                overlap: skip
                timeout: 1m
                retries: {max: \(maxRetries), backoff: 1s, max_backoff: 2s}
            """)
        // A 200 s heartbeat makes the lease 20 minutes of the database's clock: twenty steps,
        // far longer than any command lasts, so only a killed process's run can go stale.
        let environment = ProcessInfo.processInfo.environment.merging([
            "DATABASE_URL": url.raw,
            "RUNNER_CONFIG": config.path, "RUNNER_HOME": scratch.url.path + "/home",
            "RUNNER_HEARTBEAT_INTERVAL": "200s",
        ]) { $1 }

        var random = SplitMix64(seed: seed)
        var killed: Set<Int32> = []
        var launched: [Launched] = []
        func launch(_ arguments: [String]) throws {
            let log = scratch.url.appendingPathComponent("runner-\(processes.withLock { $0.count }).log")
            let process = try RunnerProcess.launch(arguments, environment: environment, log: log)
            processes.withLock { $0.append((process, log.path)) }
            launched.append((process, log.path))
        }

        // The hour starts 10 s into a slot of the database's clock.
        let start = Date()
        let firstSlot = (Int(start.timeIntervalSince1970) / slotSeconds + 1) * slotSeconds + 10
        var offset = firstSlot - Int(start.timeIntervalSince1970)
        var liveRunViolations: [String] = []
        for minute in 0..<60 {
            // A minute of the database's clock per step; it never runs backwards.
            offset = max(offset, firstSlot + 60 * minute - Int(Date().timeIntervalSince1970))
            try setClock(offset)
            launched = []
            for _ in 0..<2 {
                let draw = Double(random.next() % 1000) / 1000
                switch draw {
                case ..<0.5:
                    for _ in 0...(random.next() % 3) { try launch(["once", "flaky"]) }
                case ..<0.6: try launch(["once", "flaky", "--force"])
                case ..<0.7: try launch(["once", "flaky", "--dry-run"])
                case ..<0.85:
                    let running = processes.withLock { $0 }.filter { $0.process.isRunning }
                    if !running.isEmpty {
                        let victim = running[Int(random.next() % UInt64(running.count))].process.processIdentifier
                        kill(victim, SIGKILL)
                        killed.insert(victim)
                    }
                default: break  // a quiet minute: slots pass unclaimed, retries fall due unseen
                }
            }
            // The minute lasts until this step's processes have each logged their start or ended
            // (at most 3 s): a loaded machine slows the hour down, it does not skip its calls.
            for _ in 0..<30 {
                try await Task.sleep(for: .milliseconds(100))
                let waiting = launched.filter { entry in
                    entry.process.isRunning
                        && ((try? FileManager.default.attributesOfItem(atPath: entry.log)[.size] as? Int) ?? 0) == 0
                }
                if waiting.isEmpty { break }
            }
            try await Task.sleep(for: .milliseconds(300))
            let live = try await connection.query(
                """
                SELECT count(*) AS count, string_agg(slot_key, ' ') AS keys FROM runner.runs
                WHERE status = 'running' AND origin = 'schedule'
                """
            ).first
            if let count = try live?.int("count"), count > 1 {
                liveRunViolations.append("minute \(minute): \(try live?.string("keys") ?? "")")
            }
        }
        #expect(
            liveRunViolations.isEmpty, "more than one scheduled run running at once: \(liveRunViolations), \(context)")

        // Every process ends by itself (backoffs are at most 2 s, commands under 1 s), and none
        // met an error of its own (a failed run exits 1 too, but without one).
        for (process, log) in processes.withLock({ $0 }) {
            var waited = 0
            while process.isRunning, waited < 600 {
                try await Task.sleep(for: .milliseconds(100))
                waited += 1
            }
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                Issue.record("a runner did not end within 60 s, \(context): \(output.suffix(1500))")
            } else if process.terminationReason == .exit,
                process.terminationStatus > 1 || output.contains("error: ") || output.contains("level=critical")
            {
                Issue.record("runner exited \(process.terminationStatus), \(context): \(output.suffix(1500))")
            }
        }

        let failedLike: Set<String> = ["failed", "timed_out", "abandoned"]
        // Before anything settles it: an attempt with retries left that ended before a later
        // slot's first call has a successor (that call superseded it, if nobody retried it).
        let hourRows = try await connection.query(rowsSQL).map { try PropertyRow($0) }
        let firstCalls = Dictionary(grouping: hourRows.filter { !$0.unscheduled && $0.attempt == 1 }, by: \.slot)
            .mapValues { $0.map(\.startedAt).min() ?? .distantFuture }
        let hourKeys = Set(hourRows.map(\.slotKey))
        for row in hourRows where !row.unscheduled && failedLike.contains(row.status) && row.attempt <= maxRetries {
            guard let ended = row.finishedAt, firstCalls.contains(where: { $0.key > row.slot && $0.value > ended })
            else { continue }
            #expect(
                hourKeys.contains("\(row.base)#\(row.attempt + 1)"),
                "\(row.slotKey) (\(row.status)) has no successor though a later slot began after it ended, \(context)")
        }

        // Past every lease, into a fresh slot: one last call settles what the hour left.
        let now = Int(Date().timeIntervalSince1970) + offset + 21 * 60
        offset = (now / slotSeconds + 1) * slotSeconds + 10 - Int(Date().timeIntervalSince1970)
        try setClock(offset)
        let last = try await RunnerProcess.run(["once", "flaky"], environment: environment)
        #expect(last.status == 0 || last.status == 1, "\(last.stdout) \(last.stderr)")

        let rows = try await connection.query(rowsSQL).map { try PropertyRow($0) }
        let byKey = Dictionary(rows.map { ($0.slotKey, $0) }) { first, _ in first }
        #expect(rows.filter { $0.status == "running" }.isEmpty, "runs left running, \(context)")
        for row in rows where !row.unscheduled {
            // No due retry is lost: a failed, timed-out or abandoned attempt with retries left
            // has a successor (run, or recorded skipped with why).
            if failedLike.contains(row.status), row.attempt <= maxRetries {
                #expect(
                    byKey["\(row.base)#\(row.attempt + 1)"] != nil,
                    "attempt \(row.slotKey) (\(row.status)) has no successor, \(context)")
            }
            // A retry follows only a failure of the same slot, and starts, if it runs, before the
            // next slot and within catchup.
            if row.attempt > 1 {
                let previous = row.attempt == 2 ? row.base : "\(row.base)#\(row.attempt - 1)"
                #expect(
                    byKey[previous].map { failedLike.contains($0.status) } == true,
                    "\(row.slotKey) follows \(byKey[previous]?.status ?? "nothing"), \(context)")
                let deadline = row.slot.addingTimeInterval(Double(min(slotSeconds, catchupSeconds)))
                if !["skipped", "missed"].contains(row.status) {
                    #expect(row.startedAt < deadline, "\(row.slotKey) started past \(deadline), \(context)")
                }
            }
            #expect(row.attempt <= maxRetries + 1, "\(row.slotKey): more attempts than retries allow")
            if row.status == "skipped" { #expect(row.why != nil, "skipped \(row.slotKey) says not why") }
            if row.earlier { #expect(row.retryAt == nil, "\(row.slotKey) of an earlier slot is still due, \(context)") }
        }
        // Only a killed process's run is ever abandoned.
        for row in rows where row.status == "abandoned" {
            let pid = row.claimedBy.split(separator: ":").last.flatMap { Int32($0) }
            #expect(pid.map(killed.contains) == true, "run \(row.id) of live process \(row.claimedBy) was abandoned")
        }

        // Commands: one start per run, only for runs that were claimed to run, and no two
        // scheduled ones at once (overlap: skip).
        let lines = try String(contentsOfFile: events, encoding: .utf8).split(separator: "\n")
        let byID = Dictionary(uniqueKeysWithValues: rows.map { ($0.id, $0) })
        var open: Set<Int64> = []
        var started: Set<Int64> = []
        for line in lines {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let id = Int64(parts[1]), let row = byID[id] else {
                Issue.record("event \(line) names no run")
                continue
            }
            if parts[0] == "start" {
                #expect(started.insert(id).inserted, "run \(id) started its command twice")
                #expect(!["skipped", "missed"].contains(row.status) && !row.dryRun, "run \(id) (\(row.status)) ran")
                if !row.unscheduled {
                    // A killed runner's command dies with it (its supervisor kills the group), so
                    // an abandoned run may log no end: it ended with its runner, before the retry.
                    open = open.filter { byID[$0]?.status != "abandoned" }
                    #expect(open.isEmpty, "run \(id) started beside scheduled runs \(open), \(context)")
                    open.insert(id)
                }
            } else {
                open.remove(id)
            }
        }

        // The hour exercised what it is meant to.
        let tally = Dictionary(grouping: rows) {
            "\($0.status)\($0.attempt > 1 ? " (retry)" : "")\($0.dryRun ? " (dry)" : "")"
        }
        .map { "\($0.key) \($0.value.count)" }.sorted().joined(separator: ", ")
        print(
            "ledger property, \(context): \(processes.withLock { $0.count }) processes, \(killed.count) killed; "
                + "rows: \(tally)")
        #expect(rows.contains { $0.attempt > 1 && $0.status != "skipped" }, "no retry ran, \(context)")
        #expect(rows.contains { $0.slotKey.hasPrefix("manual:") }, "no --force run, \(context)")
        #expect(rows.contains { $0.dryRun }, "no dry run, \(context)")

        try await checkSummary(rows, connection: connection, context: context)
    }

    static let rowsSQL = """
        SELECT id, slot, slot_key, split_part(slot_key, '#', 1) AS base, attempt, status, dry_run, claimed_by,
               origin <> 'schedule' AS unscheduled,
               duration_ms, started_at, finished_at, retry_at, outcome->>'skipped_because' AS why,
               slot < (SELECT max(slot) FROM runner.runs WHERE trigger = 'once') AS earlier
        FROM runner.runs WHERE job = 'flaky' ORDER BY id
        """

    /// `runner.job_summary` equals what its definition says, recomputed here from the rows.
    static func checkSummary(_ rows: [PropertyRow], connection: PostgresConnection, context: String) async throws {
        let summary = try #require(
            try await connection.query(
                """
                SELECT last_run_id, last_status, last_success_at, success_rate_7d::float8 AS rate,
                       p50_duration_ms::float8 AS p50, p95_duration_ms::float8 AS p95,
                       last_skipped_at, last_skip_reason, missed_7d
                FROM runner.job_summary WHERE job = 'flaky'
                """
            ).first)
        let real = rows.filter { !$0.dryRun && !["skipped", "missed"].contains($0.status) }
        let latest = real.max { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }
        #expect(try summary.int64("last_run_id") == latest?.id, "last run, \(context)")
        #expect(try summary.string("last_status") == latest?.status, "last status, \(context)")
        #expect(
            try summary.date("last_success_at")
                == real.filter { $0.status == "succeeded" }.compactMap(\.finishedAt).max(),
            "last success, \(context)")

        let durations = real.filter { $0.status != "running" }.compactMap(\.durationMs).map(Double.init).sorted()
        func percentile(_ p: Double) -> Double? {
            guard !durations.isEmpty else { return nil }
            let position = p * Double(durations.count - 1)
            let low = Int(position.rounded(.down))
            let high = min(low + 1, durations.count - 1)
            return durations[low] + (durations[high] - durations[low]) * (position - Double(low))
        }
        for (column, p) in [("p50", 0.5), ("p95", 0.95)] {
            let stored: Double? = try summary.double(column)
            let expected: Double? = percentile(p)
            let same: Bool
            if let stored, let expected { same = abs(stored - expected) < 0.001 } else { same = stored == expected }
            #expect(
                same,
                "\(column): stored \(String(describing: stored)), recomputed \(String(describing: expected)), \(context)"
            )
        }

        // Per slot, the last attempt decides.
        let terminal: Set<String> = ["succeeded", "failed", "timed_out", "abandoned", "interrupted"]
        let lastAttempts = Dictionary(grouping: real.filter { terminal.contains($0.status) }, by: \.base)
            .values.compactMap { $0.max { ($0.attempt, $0.id) < ($1.attempt, $1.id) } }
        let expectedRate =
            lastAttempts.isEmpty
            ? nil
            : (Double(lastAttempts.filter { $0.status == "succeeded" }.count) / Double(lastAttempts.count) * 10_000)
                .rounded() / 10_000
        #expect(try summary.double("rate") == expectedRate, "success rate, \(context)")

        let lastSkip = rows.filter { $0.status == "skipped" }.max { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }
        #expect(try summary.date("last_skipped_at") == lastSkip?.startedAt, "last skip, \(context)")
        #expect(try summary.string("last_skip_reason") == lastSkip?.why, "last skip's reason, \(context)")
        #expect(try summary.int("missed_7d") == rows.filter { $0.status == "missed" }.count, "misses, \(context)")
    }
}

/// One row of `runner.runs` as the property test reads it.
struct PropertyRow {
    let id: Int64
    let slot: Date
    let claimedBy: String
    let slotKey: String
    let base: String
    let attempt: Int
    let status: String
    let dryRun: Bool
    let unscheduled: Bool
    let durationMs: Int64?
    let startedAt: Date
    let finishedAt: Date?
    let retryAt: Date?
    let why: String?
    let earlier: Bool

    init(_ row: PostgresRow) throws {
        id = try row.int64("id") ?? -1
        slot = try row.date("slot") ?? .distantPast
        claimedBy = try row.string("claimed_by") ?? ""
        slotKey = try row.string("slot_key") ?? ""
        base = try row.string("base") ?? ""
        attempt = try row.int("attempt") ?? 0
        status = try row.string("status") ?? ""
        dryRun = try row.bool("dry_run") ?? false
        unscheduled = try row.bool("unscheduled") ?? false
        durationMs = try row.int64("duration_ms")
        startedAt = try row.date("started_at") ?? .distantPast
        finishedAt = try row.date("finished_at")
        retryAt = try row.date("retry_at")
        why = try row.string("why")
        earlier = try row.bool("earlier") ?? false
    }
}
