import Foundation
import JobTable
import Ledger
import Logging
import PostgresClient
import RunnerSupport

/// What an agent sees of the world: the run (job, slot, id, clock, dry run, deadline), its
/// product's database, the ledger's effects, the outside clients built once per run, and a
/// logger. Its options it holds itself. Nothing else, so each agent can be tested alone
/// against a real database.
public struct AgentContext: Sendable {
    public let runID: Int64
    public let job: String
    /// What the run's effect keys start with (`scope:target`): the job's `effects_scope:`, else
    /// the agent and its product database, never the job's name, so a renamed job finds its
    /// emails, alerts and insights.
    public let effectsScope: String
    /// The nominal instant of the slot this run is for (`now` for a manual run).
    public let slot: Date
    /// The product's database (the job's `database:`, else the ledger's).
    public let database: PostgresConnection
    public let effects: Effects
    public let clients: AgentClients
    public let now: Date
    public let logger: Logger
    public let dryRun: Bool
    /// Where `database` connects, for agents that read or write over more than one connection;
    /// nil when only `database` may be used.
    public let databaseURL: ConnectionString?
    /// True when the product's tables and the ledger are in one database, so an agent may write
    /// its rows and their effects in one statement.
    public let sharesLedgerDatabase: Bool
    /// When the run's timeout ends it; waits (a provider's retry-after) never reach past it.
    public let deadline: ContinuousClock.Instant?

    public init(
        runID: Int64, job: String, effectsScope: String? = nil, slot: Date? = nil, database: PostgresConnection,
        effects: Effects,
        clients: AgentClients = AgentClients(), now: Date, logger: Logger, dryRun: Bool,
        databaseURL: ConnectionString? = nil, sharesLedgerDatabase: Bool = false,
        deadline: ContinuousClock.Instant? = nil
    ) {
        self.runID = runID
        self.job = job
        self.effectsScope = effectsScope ?? job
        self.slot = slot ?? now
        self.database = database
        self.effects = effects
        self.clients = clients
        self.now = now
        self.logger = logger
        self.dryRun = dryRun
        self.databaseURL = databaseURL
        self.sharesLedgerDatabase = sharesLedgerDatabase
        self.deadline = deadline
    }

    /// Nil when no email provider is configured: emails are kept as drafts.
    public var mailer: Mailer? { clients.mailer }
}

/// The outside services an agent may use, built once per run from the environment.
public struct AgentClients: Sendable {
    /// Nil when no email provider is configured.
    public let mailer: Mailer?
    public let github: GitHubClient
    /// Claude, when `ANTHROPIC_API_KEY` is set.
    public let model: ModelAccess?

    public struct ModelAccess: Sendable {
        public let apiKey: String
        /// `ANTHROPIC_BASE_URL`; nil for the real API.
        public let baseURL: String?
        /// `RUNNER_LLM_BACKOFF`: the first retry's wait when the API is busy and sends no retry-after.
        public let backoff: Duration
    }

    public init(mailer: Mailer? = nil, environment: [String: String] = [:]) {
        self.mailer = mailer
        github = GitHubClient(environment: environment)
        if let key = environment["ANTHROPIC_API_KEY"], !key.isEmpty {
            model = ModelAccess(
                apiKey: key, baseURL: environment["ANTHROPIC_BASE_URL"],
                backoff: environment["RUNNER_LLM_BACKOFF"].flatMap { try? DurationParser.parse($0) } ?? .seconds(1))
        } else {
            model = nil
        }
    }

    private init(mailer: Mailer?, github: GitHubClient, model: ModelAccess?) {
        self.mailer = mailer
        self.github = github
        self.model = model
    }

    func withoutMailer() -> AgentClients { AgentClients(mailer: nil, github: github, model: model) }
}

/// What an agent reports: the run's outcome summary and its counters.
public struct AgentReport: Sendable, Equatable {
    public var outcome: [String: JSONValue]
    public var metrics: [Metric]
    /// Set when part of the work failed (an email that could not be sent): the run fails.
    public var failure: String?

    public init(outcome: [String: JSONValue] = [:], metrics: [Metric] = [], failure: String? = nil) {
        self.outcome = outcome
        self.metrics = metrics
        self.failure = failure
    }
}

/// Builds an agent's report. A count is given once and lands in both the outcome (what
/// `runner history` shows) and the metrics table; what belongs to only one says so.
public struct ReportBuilder: Sendable {
    private var outcome: [String: JSONValue] = [:]
    private var metrics: [Metric] = []
    private var metricNames: [String: Int] = [:]
    public var failure: String?

    public init() {}

    /// A count in the outcome and the metrics; with `omitZero`, a zero is left out of both.
    public mutating func count(_ name: String, _ value: Int, omitZero: Bool = false) {
        if omitZero, value == 0 { return }
        outcome[name] = .number(Double(value))
        metric(name, Double(value))
    }

    /// A value for the outcome only (a label, a list, a count that is no metric).
    public mutating func note(_ name: String, _ value: JSONValue) {
        outcome[name] = value
    }

    /// A count for the outcome only, left out when zero.
    public mutating func note(_ name: String, count value: Int) {
        if value != 0 { outcome[name] = .number(Double(value)) }
    }

    /// A metric only; a second value under one name replaces the first.
    public mutating func metric(_ name: String, _ value: Double, unit: String? = nil) {
        let metric = Metric(name, value, unit: unit ?? "")
        if let index = metricNames[name] {
            metrics[index] = metric
        } else {
            metricNames[name] = metrics.count
            metrics.append(metric)
        }
    }

    /// How long a phase of the run took, as a metric in milliseconds.
    public mutating func phase(_ name: String, _ duration: Duration) {
        metric(name, duration.milliseconds, unit: "ms")
    }

    public func value(_ name: String) -> JSONValue? { outcome[name] }

    public var report: AgentReport { AgentReport(outcome: outcome, metrics: metrics, failure: failure) }
}

/// Time a run spent per phase (reading, recording, sending), summed over its pages.
struct PhaseTimer: Sendable {
    private var totals: [String: Duration] = [:]

    mutating func time<T>(_ phase: String, _ body: () async throws -> T) async rethrows -> T {
        let start = ContinuousClock.now
        defer { totals[phase, default: .zero] += ContinuousClock.now - start }
        return try await body()
    }

    mutating func add(_ phase: String, _ duration: Duration) {
        totals[phase, default: .zero] += duration
    }

    func report(into report: inout ReportBuilder) {
        for (phase, total) in totals.sorted(by: { $0.key < $1.key }) { report.phase(phase, total) }
    }
}

/// One background agent of a product. It holds its options, declared as one typed struct that
/// the job table loader checks `with:` against; the runner writes the product's activity log
/// after it.
public protocol Agent: Sendable {
    associatedtype Options: AgentOptionSet
    /// What a job table's `agent:` names it.
    static var name: AgentName { get }
    init(options: Options)

    func run(_ context: AgentContext) async throws -> AgentReport

    /// The emails a run would send now (those not already recorded, or with `includeRecorded`
    /// all of them), without sending or recording anything. `user` narrows it to one user
    /// where the agent has users.
    func preview(_ context: AgentContext, user: String?, includeRecorded: Bool) async throws -> [Email]

    /// After each run that is not a dry run, on the product's database: the product's own
    /// record of its agents' work (ZOARK's activity feed).
    func recordActivity(_ report: AgentReport, on database: PostgresConnection) async throws
}

extension Agent {
    public func recordActivity(_ report: AgentReport, on database: PostgresConnection) async throws {}

    /// Agents that send no email preview none.
    public func preview(_ context: AgentContext, user: String?, includeRecorded: Bool) async throws -> [Email] { [] }

    public func preview(_ context: AgentContext, user: String?) async throws -> [Email] {
        try await preview(context, user: user, includeRecorded: false)
    }
}

extension AgentContext {
    /// The same context with no mailer: every email becomes a draft.
    func withoutMailer() -> AgentContext {
        AgentContext(
            runID: runID, job: job, effectsScope: effectsScope, slot: slot, database: database, effects: effects,
            clients: clients.withoutMailer(),
            now: now, logger: logger, dryRun: dryRun, databaseURL: databaseURL,
            sharesLedgerDatabase: sharesLedgerDatabase, deadline: deadline)
    }
}

extension AgentContext {
    /// Calls `body` with each page of the rows of `sql` on the product's database, read through
    /// a cursor on a connection of its own (``PostgresCursor``), so a run holds one page however
    /// many rows match, and its writes on `database` commit as they go. Without the database's
    /// address, the rows are read in one query and handed over a page at a time.
    func forEachPage(
        _ sql: String, _ parameters: [PostgresValue], size: Int, _ body: (PostgresRows) async throws -> Void
    ) async throws {
        guard let databaseURL else {
            let rows = try await database.query(sql, parameters)
            for page in rows.pages(of: size) { try await body(page) }
            return
        }
        let reader = try await PostgresConnection.connect(databaseURL, applicationName: "runner", cancelsWithTask: true)
        do {
            // The read transaction waits idle while a page is worked on (sent, say): a server's
            // idle-in-transaction limit must not end it mid-run.
            var settings = "SET idle_in_transaction_session_timeout = 0"
            if let deadline {
                // The backstop if a cancel is lost, as on the agent's own connection.
                let left = max(Int64((deadline - .now).milliseconds) + 2000, 1000)
                settings += "; SET statement_timeout = \(min(left, Int64(Int32.max)))"
            }
            try await reader.setSessionDefaults(settings)
            try await PostgresCursor(on: reader, pageSize: size).forEachPage(sql, parameters, body)
        } catch {
            await reader.close()
            throw error
        }
        await reader.close()
    }
}
