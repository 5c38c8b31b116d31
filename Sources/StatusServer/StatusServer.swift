import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Ledger
import Logging
import NIOCore
import Engine
import RunnerSupport
import ServiceLifecycle

/// `runner schedule --http HOST:PORT`: `/health`, `/metrics` (Prometheus text exposition) and
/// `/` (the status page), served by Hummingbird; its lifecycle is a swift-service-lifecycle
/// service group, shut down gracefully after the scheduler's own shutdown.
///
/// It shares nothing with the scheduler that traffic could exhaust: its queries go through
/// connections of its own (the page's and /metrics', and /health's probe), each with a statement
/// timeout; the page and /metrics read the ledger at most once a second whatever the request
/// rate; connections idle (or trickling a request) for 10 s are closed; past a limit taken
/// from the open-file limit a connection is answered 503 at once.
public struct StatusServer: Sendable {
    public let host: String
    public let port: Int
    let scheduler: Scheduler
    /// The page's and /metrics' reads.
    let ledger: Ledger
    /// /health's probe, so a slow page never makes the scheduler look dead.
    let probe: Ledger
    let metrics: SchedulerMetrics
    let logger: Logger
    /// The loop's longest sleep: a loop that has not ticked for twice this is not alive.
    let tickInterval: Duration
    let access: Access
    let limit: ConnectionLimit
    /// Whether the database's failure to answer /health was logged (once per outage).
    let healthLogged = Locked(false)
    let page = Memo<String>(maxAge: .seconds(1))
    let healthMemo = Memo<HealthAnswer>(maxAge: .seconds(1))
    let lastSuccess = Memo<[String: Date]>(maxAge: .seconds(1))
    let connections = ConnectionCount()

    /// A connection is closed after this long without a request part (idle, or trickling headers).
    static let idleTimeout: TimeAmount = .seconds(10)

    public init(
        host: String, port: Int, scheduler: Scheduler, ledger: Ledger, probe: Ledger, metrics: SchedulerMetrics,
        logger: Logger, tickInterval: Duration, access: Access = Access(), limit: ConnectionLimit
    ) {
        (self.host, self.port, self.scheduler, self.ledger, self.probe) = (host, port, scheduler, ledger, probe)
        (self.metrics, self.logger, self.tickInterval) = (metrics, logger, tickInterval)
        (self.access, self.limit) = (access, limit)
    }

    /// Who may read the page and /metrics: `RUNNER_HTTP_TOKEN` guards both (as a bearer token,
    /// or as the password of basic auth, which a browser asks for); `RUNNER_METRICS_TOKEN`
    /// guards /metrics alone instead. /health is open: it says only `ok` or a generic reason.
    public struct Access: Sendable {
        public var pageToken: String?
        public var metricsToken: String?

        public init(pageToken: String? = nil, metricsToken: String? = nil) {
            self.pageToken = pageToken.flatMap { $0.isEmpty ? nil : $0 }
            self.metricsToken = metricsToken.flatMap { $0.isEmpty ? nil : $0 }
        }

        public init(environment: [String: String]) {
            self.init(pageToken: environment["RUNNER_HTTP_TOKEN"], metricsToken: environment["RUNNER_METRICS_TOKEN"])
        }

        var forMetrics: String? { metricsToken ?? pageToken }

        /// Whether `authorization` (the header's value) carries `token`: `Bearer TOKEN`, or
        /// `Basic` with TOKEN as the password (any user name). Compared in constant time.
        static func allows(_ authorization: String?, token: String?) -> Bool {
            guard let token else { return true }
            guard let authorization else { return false }
            let parts = authorization.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { return false }
            let scheme = parts[0].lowercased()
            let credential = parts[1].trimmingCharacters(in: .whitespaces)
            if scheme == "bearer" { return same(credential, token) }
            guard scheme == "basic", let decoded = Data(base64Encoded: credential),
                let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":")
            else { return false }
            return same(String(text[text.index(after: colon)...]), token)
        }

        private static func same(_ given: String, _ token: String) -> Bool {
            let (a, b) = (Array(given.utf8), Array(token.utf8))
            var difference = UInt8(a.count == b.count ? 0 : 1)
            for index in 0..<b.count { difference |= (index < a.count ? a[index] : 0) ^ b[index] }
            return difference == 0
        }
    }

    /// Whether `host` is a loopback address (what needs no token).
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
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
            // One probe at a time, at most one a second, however many ask: a flood of /health
            // neither queues probes on its connection nor cancels one another's.
            let (healthy, reason) = (try? await healthMemo.value { await health() }) ?? (false, "unknown")
            return Self.text(reason + "\n", status: healthy ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { request, _ -> Response in
            guard Access.allows(request.headers[.authorization], token: access.forMetrics) else {
                return Self.unauthorized(scheme: "Bearer")
            }
            let jobs = await scheduler.jobNames
            let running = await scheduler.runningByJob
            let ledger = self.ledger
            let lastSuccess = (try? await self.lastSuccess.value { try await ledger.lastSuccess(jobs: jobs) }) ?? [:]
            let body = metrics.exposition(running: running, jobs: jobs, lastSuccess: lastSuccess)
            return Self.text(body, contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/") { request, _ -> Response in
            guard Access.allows(request.headers[.authorization], token: access.pageToken) else {
                return Self.unauthorized(scheme: "Basic")
            }
            do {
                let (scheduler, ledger) = (self.scheduler, self.ledger)
                let html = try await page.value {
                    let jobs = await scheduler.table
                    let now = try await ledger.databaseNow()
                    // The marks and the last error: no run's output.
                    let recent = try await ledger.recentRuns(jobs: jobs.map(\.name))
                    let running = await scheduler.runningByJob
                    let pauses = try await ledger.activePauses(jobs: jobs.map(\.name))
                    let rows = jobs.map {
                        StatusPage.Row(
                            job: $0, next: $0.schedule.next(after: now), runs: recent[$0.name] ?? [],
                            running: running[$0.name] ?? 0, pause: pauses[$0.name])
                    }
                    return StatusPage.render(rows, generatedAt: now)
                }
                return Self.text(html, contentType: "text/html; charset=utf-8")
            } catch {
                logger.error("status page: the ledger did not answer", metadata: ["error": "\(error)"])
                return Self.text("the ledger's database did not answer\n", status: .serviceUnavailable)
            }
        }
        return router
    }

    typealias HealthAnswer = (healthy: Bool, reason: String)

    /// Healthy when the database answers within 2 s and the loop ticked within two tick intervals.
    func health() async -> (Bool, String) {
        // The problem, or "" when the database answered.
        let answered = FirstOf<String>()
        let probe = Task { [probe = self.probe] in
            do {
                _ = try await probe.databaseNow()
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

    /// Every answer's headers: its type, no caching, and the security headers.
    static func headers(contentType: String) -> HTTPFields {
        var headers: HTTPFields = [.contentType: contentType, .cacheControl: "no-store"]
        // The page has no scripts, forms or outside assets: nothing else may load or frame it.
        for (name, value) in securityHeaders {
            if let name = HTTPField.Name(name) { headers[name] = value }
        }
        return headers
    }

    static func text(
        _ body: String, status: HTTPResponse.Status = .ok, contentType: String = "text/plain; charset=utf-8"
    )
        -> Response
    {
        Response(
            status: status, headers: headers(contentType: contentType),
            body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// 401, asking for `scheme` (`Basic` makes a browser ask for the token as a password).
    static func unauthorized(scheme: String) -> Response {
        var response = text("a token is required (RUNNER_HTTP_TOKEN)\n", status: .unauthorized)
        response.headers[.wwwAuthenticate] = "\(scheme) realm=\"runner\", charset=\"UTF-8\""
        return response
    }

    /// Starts serving in a service group of its own, and returns once it listens; the caller
    /// stops it once the scheduler has shut down. Throws ``ListenError`` when it cannot listen
    /// (the port is taken, the address is not this host's).
    public func start(onListening: @escaping @Sendable () -> Void = {}) async throws -> Running {
        let (connections, soft) = (self.connections, limit.soft)
        let listening = AsyncStream<Void>.makeStream()
        let app = Application(
            router: router(),
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [ConnectionLimitHandler(count: connections, limit: soft)],
                    idleTimeout: Self.idleTimeout)),
            configuration: .init(
                address: .hostname(host, port: port), serverName: nil,
                availableConnectionsDelegate: MaximumAvailableConnections(limit.hard, logger: logger)),
            onServerRunning: { _ in
                onListening()
                listening.continuation.yield()
            }, logger: logger)
        return try await Self.running(app, host: host, port: port, listening: listening, logger: logger)
    }

    /// A server that could not listen: its address and the system's reason.
    public struct ListenError: Error, CustomStringConvertible {
        public let host: String
        public let port: Int
        public let reason: String
        public var description: String { "cannot listen on \(host):\(port): \(reason)" }
    }

    /// Runs `app` in a service group of its own until it listens (`listening` yields) or ends.
    private static func running(
        _ app: some Service, host: String, port: Int,
        listening: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation), logger: Logger
    ) async throws -> Running {
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [], cancellationSignals: [], logger: logger))
        let task = Task {
            defer { listening.continuation.finish() }
            try await group.run()
        }
        var iterator = listening.stream.makeAsyncIterator()
        // A caller cancelled meanwhile (a stop during start-up) stops the server it started.
        let listened = await withTaskCancellationHandler {
            await iterator.next() != nil
        } onCancel: {
            Task { await group.triggerGracefulShutdown() }
        }
        if listened, !Task.isCancelled { return Running(group: group, task: task) }
        if Task.isCancelled {
            await Running(group: group, task: task).stop()
            throw CancellationError()
        }
        // It ended before listening: its error says why.
        do {
            try await task.value
            throw ListenError(host: host, port: port, reason: "the server stopped before it listened")
        } catch let error as ListenError {
            throw error
        } catch {
            throw ListenError(host: host, port: port, reason: "\(error)")
        }
    }

    /// While the scheduler waits for its database at start: every path answers 503 `waiting for
    /// the database`, so a platform's health check sees it is not ready.
    public static func waiting(host: String, port: Int, logger: Logger) async throws -> Running {
        let listening = AsyncStream<Void>.makeStream()
        let router = Router()
        for path in ["/health", "/metrics", "/"] {
            router.get(RouterPath(stringLiteral: path)) { _, _ -> Response in
                text("waiting for the database\n", status: .serviceUnavailable)
            }
        }
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: idleTimeout)),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { _ in listening.continuation.yield() }, logger: logger)
        return try await running(app, host: host, port: port, listening: listening, logger: logger)
    }

    /// A server that `start()` started.
    public struct Running: Sendable {
        let group: ServiceGroup
        let task: Task<Void, Error>

        /// Shuts the server down gracefully and waits for it to end, at most 3 s: then the
        /// connections still open are cut.
        public func stop() async {
            await group.triggerGracefulShutdown()
            let task = self.task
            if await !finishes(within: .seconds(3), { _ = try? await task.value }) { task.cancel() }
        }
    }
}
