import Foundation
import JobTable
import Ledger
import Logging
import Outbox
import PostgresClient
import RunnerSupport

/// One agent as a product registers it: its name, the types of its options, and how to build it
/// from the options a job table gave.
public struct AgentRegistration: Sendable {
    public let name: AgentName
    public let optionTypes: [String: AgentOptionType]
    private let make: @Sendable (AgentOptions) -> any Agent

    public init<A: Agent>(_ agent: A.Type) {
        name = A.name
        optionTypes = A.Options.types
        make = { A(options: A.Options($0)) }
    }

    /// The agent with the options the job table gave it, over its declared defaults.
    public func agent(options: AgentOptions = AgentOptions()) -> any Agent { make(options) }
}

/// The agents a runner is built with: what the job table may name, and how each is made. The
/// engine knows agents only through it; each product lists its own (`ZOARK.agents`).
public struct AgentRegistry: Sendable {
    public let registrations: [AgentRegistration]

    public init(_ registrations: [AgentRegistration]) {
        self.registrations = registrations
    }

    /// What the job table loader checks `agent:` and `with:` against.
    public var catalogue: AgentCatalogue {
        AgentCatalogue(registrations.map { AgentCatalogue.Entry(name: $0.name, optionTypes: $0.optionTypes) })
    }

    /// The agent named so, built with `options`; nil when none is registered under that name.
    public func agent(_ name: AgentName, options: AgentOptions = AgentOptions()) -> (any Agent)? {
        registrations.first { $0.name == name }?.agent(options: options)
    }
}

/// An `agent:` job: opens the product's database, builds the agent's context, runs it.
package struct AgentWork: RunWork {
    package let kind: AgentName
    package let agent: any Agent
    package let databaseURL: ConnectionString?
    /// The ledger's database: effects are written over a connection of their own to it, never
    /// the heartbeat's.
    package let ledgerURL: ConnectionString?
    package let environment: [String: String]
    package let logger: Logger

    package func perform(_ run: RunInfo) async -> RunResult {
        do {
            let deadline = run.budget.deadline
            let mailer = try MailerConfiguration.mailer(environment: environment)
            guard let databaseURL else { return .failed("no database to run the agent against") }
            // A connection of its own: the agent's long queries never delay the ledger's heartbeats.
            let database = try await PostgresConnection.connect(databaseURL, cancelsWithTask: true)
            // The backstop if a cancel is lost (``RunBudget/statementBackstop``).
            let budget = RunBudget.statementTimeoutMs(until: deadline)
            try await database.setSessionDefaults("SET statement_timeout = \(budget); SET lock_timeout = \(budget)")
            guard let ledgerURL else { return .failed("no ledger database to record the agent's effects in") }
            let effects: PostgresConnection
            do {
                effects = try await PostgresConnection.connect(ledgerURL)
            } catch {
                await database.close()
                throw error
            }
            var logger = self.logger
            logger[metadataKey: "job"] = "\(run.job.name)"
            logger[metadataKey: "run_id"] = "\(run.runID)"
            if let warning = (mailer as? SMTPMailer)?.insecureCredentials { logger.warning("\(warning)") }
            let report: AgentReport
            do {
                let ledger = Effects(connection: effects, namespace: run.namespace)
                let scope = try await EffectScope.adopt(
                    run.job, kind: kind, product: database, effects: ledger, logger: logger)
                let context = AgentContext(
                    runID: run.runID, job: run.job.name, effectsScope: scope, slot: run.slot, database: database,
                    effects: ledger,
                    clients: AgentClients(mailer: mailer, environment: environment), now: run.now ?? Date(),
                    logger: logger, dryRun: run.dryRun, databaseURL: databaseURL,
                    // A job without `database:` uses the ledger's own.
                    sharesLedgerDatabase: run.job.database == nil, deadline: deadline)
                report = try await agent.run(context)
                if !run.dryRun { try await agent.recordActivity(report, on: database) }
            } catch {
                await database.close()
                await effects.close()
                throw error
            }
            await database.close()
            await effects.close()
            return RunResult(
                status: report.failure == nil ? .succeeded : .failed, outcome: .object(report.outcome),
                error: report.failure, metrics: report.metrics)
        } catch let problem as MailerConfiguration.Problem {
            return .permanent(
                "email is misconfigured: \(problem.description)",
                hint:
                    "fix the EMAIL_PROVIDER settings (`runner env` lists them), or unset EMAIL_PROVIDER to keep drafts")
        } catch let error as PostgresError {
            let setting = run.job.database == nil ? "DATABASE_URL" : "the job's database: setting"
            if let hint = error.permanentHint(database: setting) { return .permanent("\(error)", hint: hint) }
            return .failed("\(error)")
        } catch {
            return .failed("\(error)")
        }
    }
}

/// A job naming an agent this runner was not built with (a job table checked against another
/// build's catalogue): the run fails for good and says so.
package struct UnknownAgentWork: RunWork {
    package let name: AgentName

    package func perform(_ run: RunInfo) async -> RunResult {
        .permanent(
            "no agent named \"\(name)\" is built into this runner",
            hint: "`runner check` lists the agents this runner knows; deploy the runner build the job table was written for")
    }
}
