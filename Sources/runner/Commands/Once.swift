import ArgumentParser
import Foundation
import Ledger
import PostgresClient
import Engine
import RunnerSupport
import StandardAgents

struct Once: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "once",
        abstract: "Run a job's current slot once, for platform cron (Render, Railway, Kubernetes, crontab).",
        discussion: """
            Claims the job's latest slot at or before now, by the database's clock (no older than the \
            job's catchup; a slot found later is recorded as missed). A second call in the same slot \
            does nothing and exits 0. Only scheduled work holds a slot: --force runs now as a manual \
            run with a key of its own, and --dry-run computes everything and sends nothing; neither \
            uses up the slot or makes it skip.

            A run that fails or times out is retried per the job's retries: (max 3, backoff 30s doubling \
            to at most 10m, with jitter); each attempt is a run of its own, and runner exits 1 when \
            the last attempt did not succeed (a command job's own exit code is kept in the run's outcome, \
            exit_code, which runner history shows). A failure no retry can mend (a missing table, a \
            refused login, a missing database, misconfigured email) is not retried. The retry's due time is in the ledger: if this process stops while it \
            waits, the next call after that time makes the retry. A retry never starts once the \
            job's next slot has begun, nor past catchup, and obeys overlap: skip (it is recorded as \
            skipped, with why).

            Exit codes: 0 succeeded or nothing to do, 1 the run failed or timed out, \
            2 usage or configuration error, 3 database unreachable.
            """
    )

    @Argument(help: "The job to run.")
    var job: String

    @Flag(help: "Run now as a manual run with its own key, whatever the schedule says.")
    var force = false

    @Flag(name: .customLong("dry-run"), help: "Run with effects disabled; recorded as a dry run.")
    var dryRun = false

    @OptionGroup var config: ConfigOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var embedded: EmbeddedOptions

    func run() async throws {
        let table = try config.load()
        let job = try config.job(named: job, in: table)
        try embedded.check()
        let (connection, url) = try await database.connectReturningURL()
        let executor = RunExecutor(
            ledger: Ledger(connection: connection, namespace: table.namespace), agents: .standard, logger: database.logger,
            heartbeatInterval: try Self.heartbeatInterval(), databaseURL: url)
        let outcome: OnceRunner.Outcome
        do {
            let runner = OnceRunner(executor: executor)
            let (force, dryRun) = (self.force, self.dryRun)
            let task = Task { try await runner.run(job, force: force, dryRun: dryRun, table: table.jobs) }
            // SIGTERM or SIGINT stops the run; it is recorded as interrupted, not lost. A claim
            // still being tried (the database refusing it) stops too: nothing is claimed after it.
            let signals = Signals {
                runner.gate.close()
                task.cancel()
            }
            defer { signals.cancel() }
            outcome = try await task.value
        } catch let error as PostgresError {
            throw CommandError(error.message, code: error.kind == .connection ? .databaseUnreachable : .runFailed)
        } catch is OnceRunner.ClaimsStopped {
            throw CommandError("stopped by a signal before the slot was claimed; nothing ran", code: .runFailed)
        } catch let error as OnceRunner.ClaimWindowEnded {
            throw CommandError("\(error); nothing ran", code: .runFailed)
        }
        switch outcome {
        case .ran(let record, let earlier):
            for attempt in earlier + [record] {
                var line =
                    "run \(attempt.id) of \(job.name) \(attempt.status.rawValue) in \(humanDuration(milliseconds: attempt.durationMs))"
                if attempt.attempt > 1 { line += " (attempt \(attempt.attempt))" }
                if attempt.dryRun { line += " (dry run)" }
                if let error = attempt.error { line += ": \(error)" }
                print(line)
            }
            if record.status != .succeeded { throw ExitCode.runFailed }
        case .alreadyClaimed(let latest):
            let verb = latest.status == .running ? "is already running" : "already ran"
            let attempt = latest.attempt > 1 ? "attempt \(latest.attempt), " : ""
            var line =
                "\(job.name) \(verb) in slot \(utc(latest.slot)) (run \(latest.id), \(attempt)\(latest.status.rawValue))"
            if let retryAt = latest.retryAt, latest.allowsRetry(max: job.retries.max) {
                line += "; its retry is due at \(utc(retryAt))"
            }
            print(line + "; nothing to do")
        case .skipped(let runID, let liveRunID, let slot):
            print("\(job.name) slot \(utc(slot)) skipped: run \(liveRunID) is still running (recorded as run \(runID))")
        case .missed(let runID, let slot, let next):
            let recorded = runID.map { "recorded as missed (run \($0))" } ?? "already recorded"
            print(
                "\(job.name) slot \(utc(slot)) missed: this call came later than its catchup "
                    + "(\(DurationParser.format(job.catchup))); \(recorded); next at "
                    + (next.map { InstantFormat.string($0, in: job.timeZone) } ?? "never"))
        case .paused(let runID, let slot, let pause):
            let recorded = runID.map { "recorded as skipped (run \($0))" } ?? "already recorded"
            let until = pause.until.map { " until \(utc($0))" } ?? " until `runner resume \(job.name)`"
            // Another operator's words: shown escaped.
            let why = pause.reason.map { " (\(displayEscaped($0)))" } ?? ""
            print("\(job.name) slot \(utc(slot)) skipped: the job is paused\(why)\(until); \(recorded)")
        case .beforeDefinition(let slot, let definedAt, let next):
            print(
                "\(job.name) slot \(utc(slot)) is past its catchup (\(DurationParser.format(job.catchup))) and before the "
                    + "job's schedule took its present form (\(utc(definedAt))): it owes nothing for it; nothing "
                    + "recorded; next at " + (next.map { InstantFormat.string($0, in: job.timeZone) } ?? "never"))
        case .noSlot(let next):
            print(
                "\(job.name) has no slot within its catchup window (\(DurationParser.format(job.catchup))); "
                    + "next at \(next.map { InstantFormat.string($0, in: job.timeZone) } ?? "never")")
        }
    }

    /// `RUNNER_HEARTBEAT_INTERVAL` (a duration from 1s to 10m), default 5s. Anything else is a
    /// usage error: `0s` would update the run's row thousands of times a second.
    static func heartbeatInterval() throws -> Duration {
        guard let text = ProcessInfo.processInfo.environment["RUNNER_HEARTBEAT_INTERVAL"], !text.isEmpty else {
            return .seconds(5)
        }
        guard let interval = try? DurationParser.parse(text), interval >= .seconds(1), interval <= .seconds(600) else {
            throw CommandError(
                "RUNNER_HEARTBEAT_INTERVAL=\(text) is not a duration from 1s to 10m (for example 5s)", code: .usage)
        }
        return interval
    }
}
