import Foundation
import JobTable
import Ledger
import Logging
import Outbox
import PostgresClient
import RunnerSupport

/// Runs one claimed run: heartbeats while it works, enforces the job's timeout, and records
/// the outcome, error, duration and metrics in the ledger.
public struct RunExecutor: Sendable {
    public let ledger: Ledger
    public let logger: Logger
    public let heartbeatInterval: Duration
    public let environment: [String: String]
    /// The ledger's database, which agents use too unless their job names its own.
    public let databaseURL: ConnectionString?
    /// Renews the leases of all this executor's runs in progress, one statement per interval.
    public let leases: LeaseKeeper
    /// The agents `agent:` jobs name.
    public let agents: AgentRegistry
    /// Tells the jobs' `notify:` channels (and Sentry) of failures, recoveries, misses and long runs.
    public let notifier: Notifier
    /// How long a run may go without renewing its lease (or its runner without being seen
    /// alive by a command's supervisor) before it steps aside.
    package let fenceAfter: Duration

    /// `heartbeats`: a ledger on a connection of its own for the lease renewals (a scheduler's,
    /// so they never wait behind its claims); nil: `ledger`.
    public init(
        ledger: Ledger, agents: AgentRegistry, logger: Logger, heartbeatInterval: Duration = .seconds(5),
        environment: [String: String] = ProcessInfo.processInfo.environment, databaseURL: ConnectionString? = nil,
        heartbeats: Ledger? = nil
    ) {
        self.ledger = ledger
        self.agents = agents
        self.logger = logger
        self.heartbeatInterval = heartbeatInterval
        self.environment = environment
        self.databaseURL = databaseURL
        notifier = Notifier(ledger: ledger, environment: environment, logger: logger)
        fenceAfter = RunBudget.fence(heartbeatInterval: heartbeatInterval)
        leases = LeaseKeeper(
            ledger: heartbeats ?? ledger, interval: heartbeatInterval, fenceAfter: fenceAfter, logger: logger)
    }

    /// How long a run may go without a heartbeat before it counts as abandoned.
    public var lease: Duration { RunBudget.lease(heartbeatInterval: heartbeatInterval) }

    package func work(for job: Job) -> RunWork {
        switch job.action {
        case .command(let argv, let written):
            return CommandWork(
                argv: argv, written: written,
                environment: Self.commandEnvironment(for: job, from: environment, ledger: databaseURL))
        case .agent(let kind, let options):
            guard let agent = agents.agent(kind, options: options) else {
                return UnknownAgentWork(name: kind)
            }
            return AgentWork(
                kind: kind, agent: agent,
                databaseURL: job.database.map(ConnectionString.init) ?? databaseURL, ledgerURL: databaseURL,
                environment: environment, logger: logger)
        }
    }

    /// A command's environment: the minimal one and its `env:`, plus its database as
    /// `DATABASE_URL` and as libpq's `PG*` variables (psql reads those, not `DATABASE_URL`).
    /// Its database is the one its `env:` names as `DATABASE_URL`, else its `database:`, else
    /// the ledger's (the embedded one too). A job whose `env:` names any `PG*` variable itself
    /// gets none from runner: no half of one connection's settings is mixed with another's.
    package static func commandEnvironment(
        for job: Job, from environment: [String: String], ledger: ConnectionString?
    ) -> [String: String] {
        var result = job.environment.build(from: environment)
        let named = Set(job.environment.values.keys).union(job.environment.passThrough)
        let own = named.contains("DATABASE_URL") ? result["DATABASE_URL"] : nil
        let database = own ?? job.database.flatMap { $0.isEmpty ? nil : $0 } ?? ledger?.raw
        guard let database else { return result }
        result["DATABASE_URL"] = database
        if !named.contains(where: { $0.hasPrefix("PG") }) {
            result.merge(ConnectionString(database).libpqEnvironment) { _, connection in connection }
        }
        return result
    }

    /// Runs the work and records how it ended; returns the finished record.
    /// `now` is the database's clock at the claim (the agents' "now"); nil: the host's.
    /// `retryAfter`: when the run fails or times out, its next attempt is due this long after
    /// it ends (recorded with its end; nil: no retry).
    public func execute(
        runID: Int64, job: Job, slot: Date, dryRun: Bool, now: Date? = nil, retryAfter: Duration? = nil
    ) async throws -> RunRecord {
        var logger = self.logger
        logger[metadataKey: "job"] = "\(job.name)"
        logger[metadataKey: "run_id"] = "\(runID)"
        logger.info("run started", metadata: ["slot": "\(Ledger.slotKey(for: slot))", "dry_run": "\(dryRun)"])
        let started = ContinuousClock.now
        var info = RunInfo(
            runID: runID, job: job, slot: slot, dryRun: dryRun, now: now,
            budget: RunBudget(timeout: job.timeout, started: started, heartbeatInterval: heartbeatInterval))
        info.namespace = ledger.namespace
        // `running_long`: said once, while the run goes on (it is not stopped).
        let warning = job.warnAfter.flatMap { after -> Task<Void, Never>? in
            guard !dryRun, job.notify.contains(where: { $0.events.contains(.runningLong) }) else { return nil }
            return Task { [notifier] in
                guard (try? await Task.sleep(for: after)) != nil else { return }
                // A task of its own: the run ending now must not cut a send under way.
                await Task {
                    await notifier.runningLong(
                        job: job, runID: runID, slot: slot, elapsed: ContinuousClock.now - started,
                        now: (now ?? Date()).addingTimeInterval((ContinuousClock.now - started).timeInterval))
                }.value
            }
        }
        let result = await runWithTimeout(work(for: job), info)
        warning?.cancel()
        // The lease is renewed until the end is written: a stopped run's grace and a finish that
        // waits for the database must not look abandoned to another process.
        let elapsed = ContinuousClock.now - started
        let durationMs = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        let metrics = result.metrics + [Metric("duration_ms", Double(durationMs), unit: "ms")]
        do {
            try await finishRetrying(
                runID: runID, job: job.name, status: result.status, durationMs: durationMs, outcome: result.outcome,
                error: result.error, metrics: metrics, retryAfter: dryRun || result.permanent ? nil : retryAfter,
                logger: logger)
        } catch {
            await leases.release(runID)
            throw error
        }
        await leases.release(runID)
        let level: Logger.Level = result.status == .succeeded ? .info : .error
        logger.log(
            level: level, "run finished",
            metadata: [
                "status": "\(result.status.rawValue)", "duration_ms": "\(durationMs)",
                "error": "\(result.error ?? "")",
            ])
        guard let record = try await ledger.run(id: runID) else {
            throw LedgerError("run \(runID) disappeared from runner.runs")
        }
        return record
    }

    /// Writes the run's end, retrying while the database is unreachable (a restart) or refuses it
    /// for a while (a full disk, a revoked grant, a failover: ``PostgresError/mayPassForWrites``): up to
    /// ``finishPatience``. If it is still not written, the row stays `running` with a stale
    /// heartbeat and the next call marks it abandoned: never half-written.
    private func finishRetrying(
        runID: Int64, job: String, status: RunStatus, durationMs: Int64, outcome: JSONValue?, error: String?,
        metrics: [Metric], retryAfter: Duration?, logger: Logger
    ) async throws {
        let retried = Locked(0)
        try await retrying(
            for: Self.finishPatience, firstDelay: .milliseconds(250), maxDelay: .seconds(5), when: \.mayPassForWrites,
            onRetry: { error in
                // Once per run, not once per try.
                if retried.withLock({ $0 += 1; return $0 }) == 1 {
                    logger.warning(
                        "cannot record the run's end yet; retrying for up to \(DurationParser.format(Self.finishPatience))",
                        metadata: ["error": "\(error)"])
                }
            }
        ) {
            try await ledger.finish(
                runID: runID, job: job, status: status, durationMs: durationMs, outcome: outcome, error: error,
                metrics: metrics, retryAfter: retryAfter)
        }
        let tries = retried.withLock { $0 }
        if tries > 0 { logger.notice("recorded the run's end after retrying", metadata: ["retries": "\(tries)"]) }
    }

    package static let finishPatience: Duration = .seconds(120)

    /// How the race between the work, its deadline, its lease and the caller ended.
    private enum Race: Sendable {
        case finished(RunResult)
        case stopped(StopReason)
    }

    /// Runs the work in a task of its own and stops it, with a reason, at the first of: the
    /// deadline, the caller's cancellation (SIGTERM, SIGINT), or a lease the heartbeat could
    /// not renew. Stopped work has ``RunBudget/reportGrace`` to report; after that the run is
    /// recorded without its report, so a stop is never longer than that.
    private func runWithTimeout(_ work: RunWork, _ info: RunInfo) async -> RunResult {
        let budget = info.budget
        let workTask = Task { await work.perform(info) }
        // The first of four events decides; none of them waits for another (a task group would
        // wait for the work at its end, however long the work ignores being stopped).
        let race = FirstOf<Race>()
        // The lease: lost when the row is no longer running (another process abandoned it) or
        // no renewal succeeded for the fence time.
        await leases.watch(info.runID) { race.settle(.stopped(.leaseLost)) }
        // (A renewal that finds the row finished after the work ended settles nothing.)
        let watchers = [
            Task { _ = race.settle(.finished(await workTask.value)) },
            Task {
                guard (try? await Task.sleep(until: budget.deadline, clock: .continuous)) != nil else { return }
                _ = race.settle(.stopped(.deadline))
            },
        ]
        let first = await withTaskCancellationHandler {
            await race.value
        } onCancel: {
            race.settle(.stopped(.shutdown))
        }
        for watcher in watchers { watcher.cancel() }
        guard case .stopped(let reason) = first else {
            if case .finished(let result) = first { return result }
            return RunResult(status: .failed)
        }
        // Unstructured tasks: not cancelled with this (maybe cancelled) one, so the grace is
        // waited out in full, and not waited for beyond it. The timer starts before the cancel,
        // so however long cancelling takes, the grace does not grow.
        let grace = FirstOf<RunResult?>()
        let timer = Task {
            try? await Task.sleep(for: RunBudget.reportGrace)
            grace.settle(nil)
        }
        workTask.cancel()
        let reportWatcher = Task { grace.settle(await workTask.value) }
        let reported = await grace.value
        reportWatcher.cancel()
        timer.cancel()
        var stopped = reported ?? RunResult(status: .failed)
        stopped.status = reason == .deadline ? .timedOut : .interrupted
        let what = if case .command = info.job.action { "; the command's process group was stopped" } else { "" }
        let why: String
        switch reason {
        case .deadline: why = "timed out after \(DurationParser.format(budget.timeout))"
        case .shutdown: why = "interrupted by shutdown"
        case .leaseLost: why = "stopped: its lease could not be renewed, so another process may run the slot"
        }
        let late =
            reported == nil
            ? "; the work did not stop within \(DurationParser.format(RunBudget.reportGrace)), recorded without its report"
            : ""
        stopped.error = why + what + late + (stopped.error.map { " (\($0))" } ?? "")
        if reported == nil { stopped.outcome = ["stop": .string(reason.rawValue), "report": "none in time"] }
        return stopped
    }
}
