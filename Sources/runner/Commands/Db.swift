import ArgumentParser
import EmbeddedPostgres
import Foundation
import Engine

struct Db: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Manage the embedded PostgreSQL used when DATABASE_URL is not set.",
        subcommands: [URLCommand.self, Stop.self]
    )

    struct URLCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "url", abstract: "Start the embedded PostgreSQL if needed and print its connection URL.")

        /// Accepted so one alias (`runner --config ...`) serves every command; not needed here.
        @OptionGroup var config: ConfigOptions

        func run() async throws {
            let embedded = EmbeddedPostgres(home: EmbeddedPostgres.defaultHome())
            do {
                try await embedded.start()
            } catch {
                throw CommandError("cannot start the embedded PostgreSQL: \(error)", code: .databaseUnreachable)
            }
            print(embedded.connectionString().raw)
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop the embedded PostgreSQL.")

        /// Accepted so one alias (`runner --config ...`) serves every command; not needed here.
        @OptionGroup var config: ConfigOptions

        func run() async throws {
            let embedded = EmbeddedPostgres(home: EmbeddedPostgres.defaultHome())
            guard await embedded.isRunning() else {
                print("the embedded PostgreSQL in \(embedded.home.path) is not running")
                return
            }
            try await embedded.stop()
            print("stopped the embedded PostgreSQL in \(embedded.home.path)")
        }
    }
}
