import Foundation
import Logging
import PostgresClient
import RunnerSupport

/// The agents built so far, by the name the job table uses.
public enum AgentRegistry {
    /// The agent with the options the job table gave it, over its declared defaults.
    public static func agent(_ kind: AgentKind, options: AgentOptions = AgentOptions()) -> any Agent {
        switch kind {
        case .taskMonitor: return TaskMonitor(options: .init(options))
        case .approvalNudger: return ApprovalNudger(options: .init(options))
        case .timesheetDrafter: return TimesheetDrafter(options: .init(options))
        case .insightGenerator: return InsightGenerator(options: .init(options))
        }
    }

    /// The row ZOARK's activity feed gets after each (not dry) run of the agent; nil for none.
    static func activity(_ kind: AgentKind) -> AgentLog.Action? {
        switch kind {
        case .taskMonitor: return .taskStuckAlert
        case .approvalNudger: return .approvalNudge
        case .timesheetDrafter: return .timesheetReminder
        case .insightGenerator: return nil
        }
    }
}

/// An `agent:` job: opens the product's database, builds the agent's context, runs it.
struct AgentWork: RunWork {
    let kind: AgentKind
    let agent: any Agent
    let activity: AgentLog.Action?
    let databaseURL: ConnectionString?
    /// The ledger's database: effects are written over a connection of their own to it, never
    /// the heartbeat's.
    let ledgerURL: ConnectionString?
    let environment: [String: String]
    let logger: Logger

    func perform(_ run: RunInfo) async -> RunResult {
        do {
            let deadline = ContinuousClock.now + run.job.timeout
            let mailer = try MailerConfiguration.mailer(environment: environment)
            guard let databaseURL else { return .failed("no database to run the agent against") }
            // A connection of its own: the agent's long queries never delay the ledger's heartbeats.
            let database = try await PostgresConnection.connect(databaseURL, cancelsWithTask: true)
            // The backstop if a cancel is lost: no statement outlives the run's timeout by more than
            // the stop grace. A little longer than the timeout, so the deadline (a clean timed_out)
            // comes first.
            // int4 milliseconds at most (24.8 days); 0 (none) beyond, the deadline still applies.
            let budget = min(Int64(run.job.timeout.milliseconds) + 2000, Int64(Int32.max))
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
                if let activity, !run.dryRun {
                    try await AgentLog.write(
                        activity, outcome: report.outcome, failed: report.failure != nil, on: database)
                }
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
