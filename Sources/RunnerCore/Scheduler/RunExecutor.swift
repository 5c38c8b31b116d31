import Foundation
import Logging

/// Runs one claimed run: heartbeats while it works, enforces the job's timeout, and records
/// the outcome, error, duration and metrics in the ledger.
public struct RunExecutor: Sendable {
    public let ledger: Ledger
    public let logger: Logger
    public let heartbeatInterval: Duration
    public let environment: [String: String]
    /// The ledger's database, which agents use too unless their job names its own.
    public let databaseURL: ConnectionString?

    public init(
        ledger: Ledger, logger: Logger, heartbeatInterval: Duration = .seconds(5),
        environment: [String: String] = ProcessInfo.processInfo.environment, databaseURL: ConnectionString? = nil
    ) {
        self.ledger = ledger
        self.logger = logger
        self.heartbeatInterval = heartbeatInterval
        self.environment = environment
        self.databaseURL = databaseURL
    }

    /// How long a run may go without a heartbeat before it counts as abandoned.
    public var lease: Duration { max(.seconds(30), heartbeatInterval * 6) }

    func work(for job: Job) -> RunWork {
        switch job.action {
        case .command(let argv, let written):
            return CommandWork(argv: argv, written: written, environment: job.environment.build(from: environment))
        case .agent(let kind, let options):
            return AgentWork(
                agent: AgentRegistry.agent(kind), options: options, ledger: ledger,
                databaseURL: job.database.map(ConnectionString.init) ?? databaseURL,
                environment: environment, logger: logger)
        }
    }

    /// Runs the work and records how it ended; returns the finished record.
    public func execute(runID: Int64, job: Job, slot: Date, dryRun: Bool) async throws -> RunRecord {
        var logger = self.logger
        logger[metadataKey: "job"] = "\(job.name)"
        logger[metadataKey: "run_id"] = "\(runID)"
        logger.info("run started", metadata: ["slot": "\(Ledger.slotKey(for: slot))", "dry_run": "\(dryRun)"])
        let info = RunInfo(runID: runID, job: job, slot: slot, dryRun: dryRun)
        let started = ContinuousClock.now
        let result = await runWithTimeout(work(for: job), info, timeout: job.timeout, logger: logger)
        let elapsed = ContinuousClock.now - started
        let durationMs = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        let metrics = result.metrics + [Metric("duration_ms", Double(durationMs), unit: "ms")]
        try await ledger.finish(
            runID: runID, job: job.name, status: result.status, durationMs: durationMs, outcome: result.outcome,
            error: result.error, metrics: metrics)
        let level: Logger.Level = result.status == .succeeded ? .info : .error
        logger.log(
            level: level, "run finished",
            metadata: [
                "status": "\(result.status.rawValue)", "duration_ms": "\(durationMs)",
                "error": "\(result.error ?? "")",
            ])
        guard let record = try await ledger.run(id: runID) else {
            throw PostgresError(.query, "run \(runID) disappeared from runner.runs")
        }
        return record
    }

    /// How the race between the work and its deadline ended.
    private enum Race: Sendable {
        case finished(RunResult)
        case deadline
        /// The caller cancelled the run (SIGTERM, SIGINT): the work is stopped and recorded
        /// as interrupted.
        case cancelled
    }

    private func runWithTimeout(_ work: RunWork, _ info: RunInfo, timeout: Duration, logger: Logger) async -> RunResult
    {
        let ledger = self.ledger
        let interval = heartbeatInterval
        return await withTaskGroup(of: Race.self) { group in
            group.addTask { .finished(await work.perform(info)) }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                    return .deadline
                } catch {
                    return .cancelled
                }
            }
            let heartbeat = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    if Task.isCancelled { break }
                    do {
                        if try await !ledger.heartbeat(runID: info.runID) {
                            logger.warning("heartbeat found the run no longer running (marked abandoned?)")
                        }
                    } catch {
                        logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
                    }
                }
            }
            defer { heartbeat.cancel() }
            let first = await group.next() ?? .cancelled
            group.cancelAll()
            if case .finished(let result) = first { return result }
            // The deadline or the caller stopped the work; keep what it reports, with the reason.
            var stopped = RunResult(status: .failed)
            for await race in group {
                if case .finished(let result) = race { stopped = result }
            }
            let timedOut: Bool
            if case .deadline = first { timedOut = true } else { timedOut = false }
            stopped.status = timedOut ? .timedOut : .interrupted
            let what = if case .command = info.job.action { "; the command's process group was stopped" } else { "" }
            let reason = timedOut ? "timed out after \(DurationParser.format(timeout))" : "interrupted by shutdown"
            stopped.error = reason + what + (stopped.error.map { " (\($0))" } ?? "")
            return stopped
        }
    }
}
