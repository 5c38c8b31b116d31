import ArgumentParser
import Foundation
import Ledger
import PostgresClient
import Engine
import RunnerSupport
import StandardAgents

struct BackfillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backfill",
        abstract: "Run every slot of a job in a time range once, oldest first.",
        discussion: """
            Each slot from --from to --to (ISO-8601 instants, for example 2026-03-01T00:00:00Z) is \
            claimed as the scheduler would, trigger backfill, under the job's overlap policy; a slot \
            that already has a run is listed and left alone, so a second backfill of the same range \
            runs nothing. No retries: a failed slot is listed; backfill it again later. --dry-run \
            lists what would run. At most 10000 slots per call.

            Exit codes: 0 every slot ran or had run, 1 a slot failed, 2 usage or configuration error, \
            3 database unreachable.
            """
    )

    @Argument(help: "The job to backfill.")
    var job: String

    @Option(help: "The first instant of the range (ISO-8601, with Z or an offset).")
    var from: String

    @Option(help: "The last instant of the range (ISO-8601), not in the future.")
    var to: String

    @Flag(name: .customLong("dry-run"), help: "List the slots and what they hold; run nothing.")
    var dryRun = false

    @OptionGroup var config: ConfigOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var embedded: EmbeddedOptions

    func run() async throws {
        let from = try Self.instant(self.from, flag: "--from")
        let to = try Self.instant(self.to, flag: "--to")
        let (job, namespace) = try config.loadJobAndNamespace(named: job)
        try embedded.check()
        let (connection, url) = try await database.connectReturningURL()
        let executor = RunExecutor(
            ledger: Ledger(connection: connection, namespace: namespace), agents: .standard, logger: database.logger,
            heartbeatInterval: try Once.heartbeatInterval(), databaseURL: url)
        let steps: [Backfill.Step]
        do {
            let backfill = Backfill(runner: OnceRunner(executor: executor))
            let (dryRun, zone) = (self.dryRun, job.timeZone)
            let task = Task {
                try await backfill.run(job, from: from, to: to, dryRun: dryRun) { slot, step in
                    print(Self.line(slot, step, in: zone))
                }
            }
            let signals = Signals { task.cancel() }
            defer { signals.cancel() }
            steps = try await task.value
        } catch let failure as Backfill.Failure {
            throw CommandError(failure.description, code: .usage)
        } catch let error as PostgresError {
            throw CommandError(error.message, code: error.kind == .connection ? .databaseUnreachable : .runFailed)
        }
        var ran = 0
        var failed = 0
        var already = 0
        var skipped = 0
        for step in steps {
            switch step {
            case .ran(let record):
                ran += 1
                if record.status != .succeeded { failed += 1 }
            case .alreadyRan: already += 1
            case .skipped: skipped += 1
            case .wouldRun: ran += 1
            }
        }
        let verb = dryRun ? "would run" : "ran"
        print(
            "backfill of \(job.name): \(steps.count) slot\(steps.count == 1 ? "" : "s"), \(ran) \(verb)"
                + (failed > 0 ? " (\(failed) failed)" : "") + ", \(already) already ran, \(skipped) skipped")
        if failed > 0 { throw ExitCode.runFailed }
    }

    static func line(_ slot: Date, _ step: Backfill.Step, in zone: TimeZone) -> String {
        let at = InstantFormat.string(slot, in: zone)
        switch step {
        case .ran(let record):
            var line =
                "\(at)  ran: run \(record.id) \(record.status.rawValue) in \(humanDuration(milliseconds: record.durationMs))"
            if let error = record.error { line += ": \(error)" }
            return line
        case .alreadyRan(let record):
            return "\(at)  already ran: run \(record.id), \(record.status.rawValue)"
        case .skipped(let runID, let liveRunID):
            return "\(at)  skipped: run \(liveRunID) is still running (recorded as run \(runID))"
        case .wouldRun:
            return "\(at)  would run"
        }
    }

    /// An ISO-8601 instant with its offset; anything else is a usage error naming the flag.
    static func instant(_ text: String, flag: String) throws -> Date {
        guard let date = InstantFormat.parse(text) else {
            throw CommandError(
                "\(flag) \(text) is not an ISO-8601 instant with an offset (for example 2026-03-01T00:00:00Z)",
                code: .usage)
        }
        return date
    }
}
