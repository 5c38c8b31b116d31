import ArgumentParser
import Foundation
import Ledger
import Logging
import PostgresClient
import Engine
import StandardAgents

struct Preview: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preview",
        abstract: "Show the emails a job's next run would send, without sending or recording anything.",
        discussion: "runner preview timesheet-reminders --user USER_ID"
    )

    @Argument(help: "An agent job.")
    var job: String

    @Option(help: "Only this user (timesheet-drafter).")
    var user: String?

    @Flag(help: "Print the HTML body instead of the text body.")
    var html = false

    @Flag(help: "Include what earlier runs already sent (the task monitor: every stuck task, unabridged).")
    var all = false

    @OptionGroup var config: ConfigOptions
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let (job, namespace) = try config.loadJobAndNamespace(named: job)
        guard case .agent(let kind, let options) = job.action else {
            throw CommandError("\(job.name) is not a job of an agent that sends email")
        }
        let (ledger, url) = try await database.connectReturningURL()
        let productURL = job.database.map(ConnectionString.init) ?? url
        let product: PostgresConnection
        do {
            product = try await PostgresConnection.connect(productURL)
        } catch {
            throw CommandError(error.message, code: .databaseUnreachable)
        }
        // So that emails an earlier version recorded under the job's name count as sent.
        let scope = try await EffectScope.adopt(
            job, kind: kind, product: product, effects: Effects(connection: ledger, namespace: namespace), logger: database.logger)
        let context = AgentContext(
            runID: 0, job: job.name, effectsScope: scope, database: product, effects: Effects(connection: ledger, namespace: namespace),
            clients: AgentClients(environment: ProcessInfo.processInfo.environment),
            now: try await Ledger(connection: ledger, namespace: namespace).databaseNow(),
            logger: database.logger, dryRun: true, databaseURL: productURL)
        guard let agent = AgentRegistry.standard.agent(kind, options: options) else {
            throw CommandError("\(job.name) names the agent \"\(kind)\", which this runner is not built with")
        }
        let emails = try await agent.preview(
            context, user: user, includeRecorded: all)
        guard !emails.isEmpty else {
            print("\(job.name) would send no email now")
            return
        }
        for (index, email) in emails.enumerated() {
            if index > 0 { print("\n" + String(repeating: "-", count: 72) + "\n") }
            print("To: \(email.to.map(\.description).joined(separator: ", "))")
            if !email.cc.isEmpty { print("Cc: \(email.cc.map(\.description).joined(separator: ", "))") }
            print("Subject: \(email.subject)\n")
            print(html ? email.html : email.text)
        }
    }
}
