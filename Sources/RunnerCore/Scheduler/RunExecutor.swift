import Foundation
import Logging

/// Runs one claimed run: heartbeats while it works, enforces the job's timeout, and records
/// the outcome, error, duration and metrics in the ledger.
public struct RunExecutor: Sendable {
    public let ledger: Ledger
    public let logger: Logger
    public let heartbeatInterval: Duration
    public let environment: [String: String]

    public init(
        ledger: Ledger, logger: Logger, heartbeatInterval: Duration = .seconds(5),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.ledger = ledger
        self.logger = logger
        self.heartbeatInterval = heartbeatInterval
        self.environment = environment
    }

    /// How long a run may go without a heartbeat before it counts as abandoned.
    public var lease: Duration { max(.seconds(30), heartbeatInterval * 6) }

    func work(for job: Job) -> RunWork {
        switch job.action {
        case .command(let argv): return CommandWork(argv: argv, environment: environment)
        case .agent(let kind, _): return UnavailableAgentWork(agent: kind)
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

    private func runWithTimeout(_ work: RunWork, _ info: RunInfo, timeout: Duration, logger: Logger) async -> RunResult
    {
        let ledger = self.ledger
        let interval = heartbeatInterval
        return await withTaskGroup(of: RunResult?.self) { group in
            group.addTask { await work.perform(info) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
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
            let first = await group.next() ?? nil
            group.cancelAll()
            if let first { return first }
            // The timeout won: the work has been cancelled; keep what it reports, as timed_out.
            let reported: RunResult? = await group.next() ?? nil
            var stopped = reported ?? RunResult(status: .failed)
            if stopped.status == .succeeded || stopped.status == .failed || stopped.status == .running {
                stopped.status = .timedOut
            }
            let what = if case .command = info.job.action { "; the command's process group was stopped" } else { "" }
            stopped.error =
                "timed out after \(DurationParser.format(timeout))\(what)"
                + (stopped.error.map { " (\($0))" } ?? "")
            return stopped
        }
    }
}
