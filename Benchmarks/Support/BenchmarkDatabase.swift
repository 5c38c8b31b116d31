import EmbeddedPostgres
import Foundation
import Ledger
import PostgresClient
import Engine

/// The server a benchmark uses (a connection string given as its first argument, else the
/// embedded PostgreSQL of RUNNER_HOME or ./.runner) and the throwaway databases it makes there.
public struct BenchmarkDatabase: Sendable {
    public let base: ConnectionString
    let admin: PostgresConnection

    public static func fromArguments() async throws -> BenchmarkDatabase {
        let base: ConnectionString
        if let given = CommandLine.arguments.dropFirst().first {
            base = ConnectionString(given)
        } else {
            let embedded = EmbeddedPostgres(home: EmbeddedPostgres.defaultHome())
            try await embedded.start()
            base = embedded.connectionString()
        }
        return BenchmarkDatabase(base: base, admin: try await PostgresConnection.connect(base))
    }

    /// A new database with the runner schema migrated (by `migrations`, default all): its name,
    /// connection string and a connection.
    public func fresh(_ prefix: String, migrations: [Migration] = Migration.all) async throws -> (
        name: String, url: ConnectionString, connection: PostgresConnection
    ) {
        let name = "\(prefix)_\(UInt32.random(in: 0...UInt32.max))"
        try await admin.execute("CREATE DATABASE \(name)")
        let url = base.replacingDatabase(with: name)
        let connection = try await PostgresConnection.connect(url)
        _ = try await Migrator(connection: connection, migrations: migrations).migrate()
        return (name, url, connection)
    }

    public func drop(_ name: String) async throws {
        try await admin.execute("DROP DATABASE \(name)")
    }
}
