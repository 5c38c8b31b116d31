import ArgumentParser
import Foundation
import RunnerCore

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the ZOARK OS agents once on sample data in the embedded PostgreSQL, then show what happened.",
        discussion: """
            Always uses the embedded PostgreSQL (in .runner/ or RUNNER_HOME), never DATABASE_URL.
            Loads ZOARK's tables and sample data, runs stuck-tasks, approval-nudges and
            timesheet-reminders once each, and prints the run history and the outbox. With no
            EMAIL_PROVIDER the emails are kept as drafts. Running it again is safe: the second
            runs find nothing new to send.
            """
    )

    func run() async throws {
        // The demo writes sample tables: never into a database named by DATABASE_URL.
        unsetenv("DATABASE_URL")
        let options = try DatabaseOptions.parse([])
        let (connection, url) = try await options.connectReturningURL()
        try await connection.execute(ZoarkSchema.sql)
        try await connection.execute(DemoData.zoark)
        let table: JobTable
        do {
            table = try JobTableLoader().load(text: DemoData.jobs, path: "(demo jobs)")
        } catch {
            throw CommandError(error.description)
        }
        let executor = RunExecutor(
            ledger: Ledger(connection: connection), logger: options.logger, heartbeatInterval: Once.heartbeatInterval(),
            databaseURL: url)
        print("== runs ==")
        for job in table.jobs {
            if case .ran(let record) = try await OnceRunner(executor: executor).run(job, force: true) {
                var line = "\(job.name): run \(record.id) \(record.status.rawValue)"
                if let outcome = record.outcome { line += " \(outcome.text)" }
                if let error = record.error { line += ": \(error)" }
                print(line)
            }
        }
        print("\n== history (runner history) ==")
        var history = try History.parse(["--limit", "12"])
        try await history.run()
        print("\n== outbox (runner outbox) ==")
        var outbox = try Outbox.parse(["--limit", "30"])
        try await outbox.run()
        print("\nRun `runner demo` again: the second runs send nothing new. Preview an email with")
        print(
            "`runner preview approval-nudges --config <a jobs.yaml with it>`; stop the database with `runner db stop`.")
    }
}
