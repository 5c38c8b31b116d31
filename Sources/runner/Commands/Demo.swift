import ArgumentParser
import Demo
import Foundation
import JobTable
import Ledger
import Engine
import StandardAgents
import VectorOS
import ZOARK

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run every agent once on sample data in the embedded PostgreSQL, then show what happened.",
        discussion: """
            Always uses the embedded PostgreSQL (in .runner/ or RUNNER_HOME), never DATABASE_URL. \
            Loads ZOARK's and VectorOS's tables and sample data, runs stuck-tasks, approval-nudges, \
            timesheet-reminders and deal-insights once each, and prints the run history and the \
            outbox. deal-insights writes rule-based insights unless ANTHROPIC_API_KEY is set. With no \
            EMAIL_PROVIDER the emails are kept as drafts. Running it again is safe: the second \
            runs find nothing new to send.
            """
    )

    /// Accepted so one alias (`runner --config ...`) serves every command; the demo uses its own table.
    @OptionGroup var config: ConfigOptions

    func run() async throws {
        // The demo writes sample tables: never into a database named by DATABASE_URL.
        unsetenv("DATABASE_URL")
        let options = try DatabaseOptions.parse([])
        let (connection, url) = try await options.connectReturningURL()
        try await connection.execute(ZoarkSchema.sql)
        try await connection.execute(DemoData.zoark)
        try await connection.execute(VectorOSSchema.sql)
        try await connection.execute(DemoData.vectorOS)
        let table: JobTable
        do {
            table = try JobTableLoader(agents: .standard).load(text: DemoData.jobs, path: "(demo jobs)")
        } catch {
            throw CommandError(error.description)
        }
        let executor = RunExecutor(
            ledger: Ledger(connection: connection, namespace: JobTable.defaultNamespace), agents: .standard, logger: options.logger,
            heartbeatInterval: try Once.heartbeatInterval(),
            databaseURL: url)
        print("== runs ==")
        for job in table.jobs {
            if case .ran(let record, _) = try await OnceRunner(executor: executor).run(job, force: true, retry: false) {
                var line = "\(job.name): run \(record.id) \(record.status.rawValue)"
                if let outcome = record.outcome { line += " \(outcome.text)" }
                if let error = record.error { line += ": \(error)" }
                print(line)
            }
        }
        print("\n== history (runner history) ==")
        let history = try History.parse(["--limit", "12"])
        try await history.run()
        let insights = try await connection.query(
            #"SELECT "priority", count(*) AS n FROM insights GROUP BY "priority" ORDER BY min(CASE "priority" WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END)"#
        )
        print("\n== VectorOS insights (the insights table) ==")
        print(
            try insights.map { "\(try $0.string("priority") ?? "?"): \(try $0.int("n") ?? 0)" }.joined(separator: ", "))
        print("\n== outbox (runner outbox) ==")
        let outbox = try Outbox.List.parse(["--limit", "30"])
        try await outbox.run()
        print("\nRun `runner demo` again: the second runs send nothing new. Read an email with")
        print("`runner outbox show ID` (add --html for its HTML); stop the database with `runner db stop`.")
    }
}
