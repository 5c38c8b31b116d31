import Foundation
import Logging

/// What an agent sees of the world: its database, the ledger's effects, a mailer, the clock,
/// a logger, its options and whether this is a dry run. Nothing else, so each agent can be
/// tested alone against a real database.
public struct AgentContext: Sendable {
    public let runID: Int64
    public let job: String
    /// The product's database (the job's `database:`, else the ledger's).
    public let database: PostgresConnection
    public let effects: Effects
    /// Nil when no email provider is configured: emails are kept as drafts.
    public let mailer: Mailer?
    public let now: Date
    public let logger: Logger
    public let options: AgentOptions
    public let dryRun: Bool
    public let environment: [String: String]
    /// Where `database` connects, for agents that write over more than one connection; nil
    /// when only `database` may be used.
    public let databaseURL: ConnectionString?
    /// True when the product's tables and the ledger are in one database, so an agent may write
    /// its rows and their effects in one transaction on `database`.
    public let sharesLedgerDatabase: Bool
    /// When the run's timeout ends it; waits (a provider's retry-after) never reach past it.
    public let deadline: ContinuousClock.Instant?

    public init(
        runID: Int64, job: String, database: PostgresConnection, effects: Effects, mailer: Mailer?, now: Date,
        logger: Logger, options: AgentOptions, dryRun: Bool, environment: [String: String] = [:],
        databaseURL: ConnectionString? = nil, sharesLedgerDatabase: Bool = false,
        deadline: ContinuousClock.Instant? = nil
    ) {
        self.runID = runID
        self.job = job
        self.database = database
        self.effects = effects
        self.mailer = mailer
        self.now = now
        self.logger = logger
        self.options = options
        self.dryRun = dryRun
        self.environment = environment
        self.databaseURL = databaseURL
        self.sharesLedgerDatabase = sharesLedgerDatabase
        self.deadline = deadline
    }
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

/// One background agent of a product.
public protocol Agent: Sendable {
    func run(_ context: AgentContext) async throws -> AgentReport

    /// The emails a run would send now (those not already recorded, or with `includeRecorded`
    /// all of them), without sending or recording anything. `user` narrows it to one user
    /// where the agent has users.
    func preview(_ context: AgentContext, user: String?, includeRecorded: Bool) async throws -> [Email]
}

extension Agent {
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
            runID: runID, job: job, database: database, effects: effects, mailer: nil, now: now, logger: logger,
            options: options, dryRun: dryRun, environment: environment, databaseURL: databaseURL,
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
            if let deadline {
                // The backstop if a cancel is lost, as on the agent's own connection.
                let left = max(Int64((deadline - .now).milliseconds) + 2000, 1000)
                try await reader.setSessionDefaults("SET statement_timeout = \(min(left, Int64(Int32.max)))")
            }
            try await PostgresCursor(on: reader, pageSize: size).forEachPage(sql, parameters, body)
        } catch {
            await reader.close()
            throw error
        }
        await reader.close()
    }
}
