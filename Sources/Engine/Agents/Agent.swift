import Foundation
import HTTPClients
import JobTable
import Ledger
import Logging
import Outbox
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
    /// What the outbox sends this run's emails with.
    public var outbox: OutboxContext {
        OutboxContext(
            runID: runID, effectsScope: effectsScope, effects: effects, mailer: mailer, logger: logger, dryRun: dryRun,
            deadline: deadline)
    }
}

extension AgentContext {
    /// Calls `body` with each page of the rows of `sql` on the product's database, read through
    /// a cursor on a connection of its own (``PostgresCursor``), so a run holds one page however
    /// many rows match, and its writes on `database` commit as they go. Without the database's
    /// address, the rows are read in one query and handed over a page at a time.
    package func forEachPage(
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
                settings += "; SET statement_timeout = \(RunBudget.statementTimeoutMs(until: deadline))"
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
