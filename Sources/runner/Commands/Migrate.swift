import ArgumentParser
import Foundation
import Ledger
import Engine

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or update the runner schema (runs, effects, metrics, views).",
        discussion: """
            Idempotent, and safe when several replicas run it at the same moment. Then registers the \
            job table's jobs (when there is a table), so runner.job_summary lists them before their first run.
            """
    )

    @OptionGroup var config: ConfigOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var embedded: EmbeddedOptions

    func run() async throws {
        try embedded.check()
        let connection = try await database.connect(requireSchema: false)
        let report = try await Migrator(connection: connection).migrate()
        if report.applied.isEmpty {
            print("runner schema is up to date (version \(report.version))")
        } else {
            let list = report.applied.map(String.init).joined(separator: ", ")
            print(
                "applied migration\(report.applied.count == 1 ? "" : "s") \(list); runner schema is at version \(report.version)"
            )
        }
        guard config.config != nil || FileManager.default.fileExists(atPath: config.path) else { return }
        let table = try config.load()
        let ledger = Ledger(connection: connection, namespace: table.namespace)
        try await ledger.registerJobs(table.jobs, at: try await ledger.databaseNow(), wholeTable: true)
        print("registered \(table.jobs.count) job\(table.jobs.count == 1 ? "" : "s") of \(table.path)")
    }
}
