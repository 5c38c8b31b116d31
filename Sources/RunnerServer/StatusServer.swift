import Foundation
import HTTPTypes
import Hummingbird
import Logging
import RunnerCore
import ServiceLifecycle

/// `runner schedule --http HOST:PORT`: `/health`, `/metrics` (Prometheus text exposition) and
/// `/` (the status page), served by Hummingbird; its lifecycle is a swift-service-lifecycle
/// service group, shut down gracefully after the scheduler's own shutdown.
public struct StatusServer: Sendable {
    public let host: String
    public let port: Int
    let scheduler: Scheduler
    let ledger: Ledger
    let metrics: SchedulerMetrics
    let logger: Logger
    /// The loop's longest sleep: a loop that has not ticked for twice this is not alive.
    let tickInterval: Duration
    /// Whether the database's failure to answer /health was logged (once per outage).
    let healthLogged = Locked(false)

    public init(
        host: String, port: Int, scheduler: Scheduler, ledger: Ledger, metrics: SchedulerMetrics, logger: Logger,
        tickInterval: Duration
    ) {
        (self.host, self.port, self.scheduler, self.ledger) = (host, port, scheduler, ledger)
        (self.metrics, self.logger, self.tickInterval) = (metrics, logger, tickInterval)
    }

    /// `HOST:PORT` (`0.0.0.0:8080`, `[::1]:8080`, `:8080` for every interface).
    public static func parse(address: String) -> (host: String, port: Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "0.0.0.0" }
        guard !host.contains(where: { $0.isWhitespace || $0 == "/" }) else { return nil }
        return (host, port)
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/health") { _, _ -> Response in
            let (healthy, reason) = await health()
            return Self.text(reason + "\n", status: healthy ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { _, _ -> Response in
            let jobs = await scheduler.jobNames
            let running = await scheduler.runningByJob
            let lastSuccess = (try? await ledger.lastSuccess(jobs: jobs)) ?? [:]
            let body = metrics.exposition(running: running, jobs: jobs, lastSuccess: lastSuccess)
            return Self.text(body, contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/") { _, _ -> Response in
            do {
                let jobs = await scheduler.table
                let now = try await ledger.databaseNow()
                let recent = try await ledger.recentRuns(jobs: jobs.map(\.name))
                let running = await scheduler.runningByJob
                let pauses = try await ledger.activePauses(jobs: jobs.map(\.name))
                let rows = jobs.map {
                    StatusPage.Row(
                        job: $0, next: $0.schedule.next(after: now), runs: recent[$0.name] ?? [],
                        running: running[$0.name] ?? 0, pause: pauses[$0.name])
                }
                return Self.text(
                    StatusPage.render(rows, generatedAt: now), contentType: "text/html; charset=utf-8")
            } catch {
                logger.error("status page: the ledger did not answer", metadata: ["error": "\(error)"])
                return Self.text("the ledger's database did not answer\n", status: .serviceUnavailable)
            }
        }
        return router
    }

    /// Healthy when the database answers within 2 s and the loop ticked within two tick intervals.
    func health() async -> (Bool, String) {
        // The problem, or "" when the database answered.
        let answered = FirstOf<String>()
        let probe = Task {
            do {
                _ = try await ledger.databaseNow()
                answered.settle("")
            } catch {
                answered.settle("the database did not answer: \(error)")
            }
        }
        let timer = Task {
            try? await Task.sleep(for: .seconds(2))
            answered.settle("the database did not answer within 2 s")
        }
        let databaseProblem = await answered.value
        probe.cancel()
        timer.cancel()
        // The detail (libpq's words, the server's address) goes to the log, once per outage;
        // /health tells a caller only what is wrong.
        if !databaseProblem.isEmpty {
            if healthLogged.withLock({ let first = !$0; $0 = true; return first }) {
                logger.error("/health: the database did not answer", metadata: ["error": "\(databaseProblem)"])
            }
            return (false, "the database did not answer")
        }
        healthLogged.withLock { $0 = false }
        guard let tick = await scheduler.lastTick else { return (false, "the scheduler has not ticked yet") }
        let since = ContinuousClock.now - tick
        guard since <= tickInterval * 2 else {
            return (false, "the scheduler loop last ticked \(DurationParser.format(since)) ago")
        }
        // The database answers, yet slots cannot be claimed or runs recorded (a full disk, a
        // revoked grant): not healthy either.
        if await scheduler.failuresInARow >= 3 { return (false, "slots are failing to be claimed or recorded") }
        return (true, "ok")
    }

    /// Sent with every answer.
    static let securityHeaders: [(String, String)] = [
        (
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        ),
        ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
    ]

    static func text(
        _ body: String, status: HTTPResponse.Status = .ok, contentType: String = "text/plain; charset=utf-8"
    )
        -> Response
    {
        var headers: HTTPFields = [.contentType: contentType, .cacheControl: "no-store"]
        // The page has no scripts, forms or outside assets: nothing else may load or frame it.
        for (name, value) in securityHeaders {
            if let name = HTTPField.Name(name) { headers[name] = value }
        }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// Starts serving in a service group of its own; the caller stops it once the scheduler
    /// has shut down.
    public func start() -> Running {
        let app = Application(
            router: router(), configuration: .init(address: .hostname(host, port: port), serverName: nil),
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [], cancellationSignals: [], logger: logger))
        return Running(group: group, task: Task { try await group.run() })
    }

    /// A server that `start()` started.
    public struct Running: Sendable {
        let group: ServiceGroup
        let task: Task<Void, Error>

        /// Shuts the server down gracefully and waits for it to end.
        public func stop() async {
            await group.triggerGracefulShutdown()
            _ = try? await task.value
        }
    }
}
