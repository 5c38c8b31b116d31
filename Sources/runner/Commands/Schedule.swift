import ArgumentParser
import Dispatch
import Foundation
import JobTable
import Ledger
import Logging
import PostgresClient
import Engine
import StandardAgents
import StatusServer
import RunnerSupport

struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Run every job of the table on its schedule, as a long-running scheduler.",
        discussion: """
            Sleeps until the earliest next fire, re-reads the database's clock on waking, and claims \
            each due slot with the same ledger claim as runner once: any number of replicas on one \
            database run each slot once. After a start or a stall the latest slot within a job's \
            catchup runs (trigger catchup); older ones are recorded missed. Every few seconds it also \
            marks runs of dead processes abandoned and makes the retries they left due.

            SIGTERM or SIGINT: stop claiming, wait up to --grace for running jobs, stop the rest \
            (recorded interrupted), exit 0; a second signal stops at once. SIGHUP reloads the job \
            table: an invalid file keeps the old table and logs every error.
            """
    )

    @Option(help: "Serve /health, /metrics and the status page / on HOST:PORT (for example 0.0.0.0:8080).")
    var http: String?

    @Option(help: "How long a shutdown waits for running jobs before stopping them (for example 25s).")
    var grace: String = "25s"

    @OptionGroup var config: ConfigOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var embedded: EmbeddedOptions

    /// The loop wakes at least this often: a clock jump, a reload or a due retry is seen within it.
    static let tickCap: Duration = .seconds(1)

    func run() async throws {
        guard let grace = try? DurationParser.parse(grace), grace <= .seconds(3600) else {
            throw CommandError("--grace \(self.grace) is not a duration up to 1h (for example 25s)", code: .usage)
        }
        let address = try http.map { text in
            guard let address = StatusServer.parse(address: text) else {
                throw CommandError("--http \(text) is not HOST:PORT (for example 0.0.0.0:8080)", code: .usage)
            }
            return address
        }
        let table = try config.load()
        try embedded.check()
        let logger = database.logger
        // A scheduler started before its database (a deploy, a reboot) waits for it, /health
        // saying 503 meanwhile; SIGTERM ends the wait.
        // One handler for the whole run (a signal source cancelled and made again can lose the
        // signal): before the scheduler exists a signal only ends the wait.
        let stopping = Locked(Stopping())
        let stop = Signals {
            let (first, action) = stopping.withLock { state in
                defer { state.requested = true }
                return (!state.requested, state.action)
            }
            // Armed by the first signal whatever the phase (a database wait, the set-up).
            if first { Self.armStopBound(grace + Scheduler.stopMargin + .seconds(3), logger: logger) }
            action?()
        }
        defer { stop.cancel() }
        let connected = try await database.connectWaiting(
            waiting: {
                guard let address else { return nil }
                return try await Self.listening(logger: logger) {
                    try await StatusServer.waiting(host: address.host, port: address.port, logger: logger)
                }
            },
            stopped: { stopping.withLock { $0.requested } })
        guard let (connection, url) = connected else {
            logger.info("stopped while waiting for the database")
            return
        }
        let ledger = Ledger(connection: connection, namespace: table.namespace)
        // Lease renewals on a connection of their own: behind a burst of claims on the main one,
        // they would come late and another replica would take the runs for abandoned.
        let heartbeats = Ledger(
            connection: try await PostgresConnection.connect(url, applicationName: "runner-leases"),
            namespace: table.namespace)
        let executor = RunExecutor(
            ledger: ledger, agents: .standard, logger: logger, heartbeatInterval: try Once.heartbeatInterval(), databaseURL: url,
            heartbeats: heartbeats)
        let now = try await ledger.databaseNow()
        try await ledger.registerJobs(table.jobs, at: now, wholeTable: true)
        let metrics = SchedulerMetrics()
        let scheduler = Scheduler(
            jobs: table.jobs, runner: OnceRunner(executor: executor), logger: logger, now: now,
            retention: table.retention, events: metrics, definitions: try await Self.definitions(table, ledger: ledger))
        var server: StatusServer.Running?
        if let address {
            server = try await Self.serve(
                at: address, scheduler: scheduler, url: url, namespace: table.namespace, metrics: metrics,
                logger: logger)
        }
        logger.info("scheduler started", metadata: ["jobs": "\(table.jobs.count)", "config": "\(table.path)"])

        let loop = Task { await Self.loop(scheduler, ledger: ledger, logger: logger) }
        // Shutdown signals counted: the first stops claiming, the second stops running jobs.
        let signals = Locked(0)
        let onStop: @Sendable () -> Void = {
            if signals.withLock({ $0 += 1; return $0 }) == 1 {
                // Before anything else: no fire still queued claims its slot.
                scheduler.stopClaiming()
                logger.info(
                    "shutdown: no new claims; waiting for running jobs",
                    metadata: ["grace": "\(DurationParser.format(grace))"])
                loop.cancel()
            } else {
                logger.warning("second signal: stopping running jobs now")
                Task { await scheduler.shutdown(grace: .zero) }
            }
        }
        // A signal that came while the scheduler was being set up counts as the first.
        if stopping.withLock({
            $0.action = onStop; return $0.requested
        }) {
            onStop()
        }
        let config = self.config
        let reload = Signals([SIGHUP], counting: false) {
            Task {
                do {
                    let table = try JobTableLoader(agents: .standard).load(path: config.path)
                    guard table.namespace == ledger.namespace else {
                        logger.error(
                            "reload refused: the table's namespace changed; restart the scheduler to move it",
                            metadata: ["namespace": "\(ledger.namespace)", "new_namespace": "\(table.namespace)"])
                        return
                    }
                    let now = try await ledger.databaseNow()
                    try await ledger.registerJobs(table.jobs, at: now, wholeTable: true)
                    await scheduler.reload(
                        table.jobs, now: now, retention: table.retention,
                        definitions: try await Self.definitions(table, ledger: ledger))
                    logger.info("job table reloaded", metadata: ["jobs": "\(table.jobs.count)"])
                } catch let error as JobTableError {
                    for line in error.description.split(separator: "\n") {
                        logger.error("reload refused; the old job table keeps running", metadata: ["error": "\(line)"])
                    }
                } catch {
                    logger.error("reload failed; the old job table keeps running", metadata: ["error": "\(error)"])
                }
            }
        }
        await loop.value
        await scheduler.shutdown(grace: grace)
        // Both signals' stops: the second's ran in a task of its own.
        let stopped = await scheduler.interruptedTotal
        await server?.stop()
        reload.cancel()
        logger.info("scheduler stopped", metadata: ["interrupted": "\(stopped)"])
    }

    /// Starts the status server on connections of its own (the page's and /metrics', and
    /// /health's), with statement timeouts, a connection limit from the open-file limit (raised
    /// to its hard limit first) and the tokens of the environment.
    static func serve(
        at address: (host: String, port: Int), scheduler: Scheduler, url: ConnectionString, namespace: String,
        metrics: SchedulerMetrics, logger: Logger
    ) async throws -> StatusServer.Running {
        func ledger(_ name: String, timeout: String) async throws -> Ledger {
            let connection = try await PostgresConnection.connect(url, applicationName: name, cancelsWithTask: true)
            try await connection.setSessionDefaults("SET statement_timeout = '\(timeout)'")
            return Ledger(connection: connection, namespace: namespace)
        }
        let fileLimit = ConnectionLimit.raiseFileLimit()
        let limit = ConnectionLimit(fileLimit: fileLimit)
        let access = StatusServer.Access(environment: ProcessInfo.processInfo.environment)
        let server = StatusServer(
            host: address.host, port: address.port, scheduler: scheduler,
            ledger: try await ledger("runner-http", timeout: "5s"),
            probe: try await ledger("runner-health", timeout: "2s"), metrics: metrics, logger: logger,
            tickInterval: tickCap, access: access, limit: limit)
        if access.pageToken == nil, !StatusServer.isLoopback(address.host) {
            logger.warning(
                "the status page and /metrics are served without a token on an address other machines can reach; set RUNNER_HTTP_TOKEN (and RUNNER_METRICS_TOKEN for Prometheus), or bind to 127.0.0.1",
                metadata: ["address": "\(address.host):\(address.port)"])
        }
        return try await listening(logger: logger) {
            try await server.start {
                logger.info(
                    "serving /health, /metrics and /",
                    metadata: [
                        "address": "\(address.host):\(address.port)", "connection_limit": "\(limit.soft)",
                        "open_file_limit": "\(fileLimit)",
                    ])
            }
        }
    }

    /// Starts a server: a port another process (or the waiting server, cut off mid-stop) still
    /// holds may be freed within seconds, so it is tried for up to 5 s; then the scheduler stops
    /// (exit 2), saying why.
    static func listening(
        logger: Logger, _ start: () async throws -> StatusServer.Running
    ) async throws -> StatusServer.Running {
        let giveUp = ContinuousClock.now + .seconds(5)
        while true {
            do {
                return try await start()
            } catch let error as StatusServer.ListenError where ContinuousClock.now < giveUp {
                logger.debug("cannot listen yet; trying again", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(250))
            } catch let error as StatusServer.ListenError {
                throw CommandError("\(error)", hint: listenHint, code: .usage)
            }
        }
    }

    static let listenHint =
        "another process holds that port, or the address is not one of this host's: choose another --http"

    /// The stop's hard bound, whatever a tick, a connection attempt or a write under way waits
    /// for: the runs left `running` are marked abandoned by another replica, and their commands
    /// die with this process (their supervisors see it go). Exit 0: the stop was asked for, and
    /// the ledger stays consistent. A second timer exits even if writing the log line hangs.
    static func armStopBound(_ bound: Duration, logger: Logger) {
        DispatchQueue.global().asyncAfter(deadline: .now() + bound.timeInterval + 1) { _exit(0) }
        DispatchQueue.global().asyncAfter(deadline: .now() + bound.timeInterval) {
            logger.warning("shutdown: not done \(DurationParser.format(bound)) after the signal; exiting now")
            _exit(0)
        }
    }

    /// When each of the table's jobs took its present form, as registered.
    static func definitions(_ table: JobTable, ledger: Ledger) async throws -> [String: Date] {
        try await ledger.slotHistories(jobs: table.jobs.map(\.name)).compactMapValues(\.definedAt)
    }

    /// Tick, then sleep until the next fire (at most ``tickCap``), until cancelled. A database
    /// that does not answer is tried again every tick, logged once when it stops answering and
    /// once when it answers again; the loop never ends by itself.
    static func loop(_ scheduler: Scheduler, ledger: Ledger, logger: Logger) async {
        var failingSince: ContinuousClock.Instant?
        while !Task.isCancelled {
            var wait = tickCap
            do {
                // The skew this replica's runs record.
                let (now, skewMs, _) = try await ledger.clockReading()
                if let since = failingSince {
                    logger.notice(
                        "the database answers again; ticking",
                        metadata: ["outage_ms": "\(Int64((ContinuousClock.now - since).timeInterval * 1000))"])
                    failingSince = nil
                }
                await scheduler.tick(now: now, skewMs: skewMs)
                if let next = await scheduler.nextFire {
                    let until = Duration.milliseconds(Int64((next.timeIntervalSince(now) * 1000).rounded(.up)))
                    wait = max(.milliseconds(1), min(until, tickCap))
                }
            } catch {
                if failingSince == nil {
                    failingSince = .now
                    logger.error(
                        "scheduler tick failed; trying again every second (logged again when it recovers)",
                        metadata: ["error": "\(error)"])
                }
            }
            try? await Task.sleep(for: wait)
        }
    }
}

/// A shutdown signal's state: whether one came, and what it does once the scheduler exists.
struct Stopping {
    var requested = false
    var action: (@Sendable () -> Void)?
}
