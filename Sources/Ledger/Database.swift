import EmbeddedPostgres
import Foundation
import Logging
import PostgresClient
import RunnerSupport

/// Opens the ledger's database: `DATABASE_URL`, or the embedded default when it is unset.
public struct Database: Sendable {
    public enum Failure: Error, CustomStringConvertible, Sendable {
        /// Could not reach or log in to the server (exit code 3).
        case unreachable(String)
        /// The `runner` schema is missing or older than this binary (exit code 2).
        case schemaOutdated(current: Int, required: Int)
        /// The `runner` schema is newer than this binary knows: a newer runner migrated it, and
        /// this one's statements may no longer fit it (exit code 2).
        case schemaNewer(current: Int, known: Int)
        /// The embedded cluster could not be started.
        case embedded(String)
        /// `DATABASE_URL` does not parse (exit code 2): retrying cannot help.
        case invalidURL(String)
        /// The server answered and refused (a failed login, a missing database; exit code 2):
        /// retrying cannot help. The message ends with a hint.
        case refused(String)

        public var description: String {
            switch self {
            case .unreachable(let message):
                return message
                    + "\nhint: is the server running and reachable from here? check the host and port in DATABASE_URL"
            case .refused(let message): return message
            case .schemaOutdated(let current, let required):
                return current == 0
                    ? "the runner schema does not exist in this database: run `runner migrate` first"
                    : "the runner schema is at version \(current), this runner needs \(required): run `runner migrate`"
            case .schemaNewer(let current, let known):
                return "the runner schema is at version \(current), newer than this runner knows (\(known)): "
                    + "upgrade runner to the version that migrated it"
            case .embedded(let message): return "cannot start the embedded PostgreSQL: \(message)"
            case .invalidURL(let message): return message
            }
        }
    }

    public let environment: [String: String]
    public let logger: Logger

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    public var usesEmbedded: Bool { (environment["DATABASE_URL"] ?? "").isEmpty }

    public var embedded: EmbeddedPostgres {
        EmbeddedPostgres(home: EmbeddedPostgres.defaultHome(environment: environment))
    }

    /// The connection string, starting the embedded cluster if that is the default.
    public func connectionString() async throws -> ConnectionString {
        if let url = environment["DATABASE_URL"], !url.isEmpty { return ConnectionString(url) }
        let embedded = self.embedded
        let started: Bool
        do {
            started = try await embedded.start()
        } catch {
            throw Failure.embedded("\(error)")
        }
        // Said when this process starts the server, not on every command that uses it.
        if started {
            FileHandle.standardError.write(
                Data(
                    ("runner: DATABASE_URL is not set; started the embedded PostgreSQL in \(embedded.home.path) "
                        + "(`runner db stop` stops it)\n").utf8))
        }
        return embedded.connectionString()
    }

    /// Connects, retrying briefly with backoff, and checks that the schema is current. On the
    /// embedded default the schema is migrated automatically, since the runner owns that cluster.
    public func connect(requireSchema: Bool = true, attempts: Int = 4) async throws -> PostgresConnection {
        try await connectReturningURL(requireSchema: requireSchema, attempts: attempts).connection
    }

    /// ``connect(requireSchema:attempts:)``, with the connection string it used.
    public func connectReturningURL(requireSchema: Bool = true, attempts: Int = 4) async throws
        -> (connection: PostgresConnection, url: ConnectionString)
    {
        let target = try await connectionString()
        do {
            try target.validate()
        } catch {
            throw Failure.invalidURL(error.message)
        }
        var delay: Duration = .milliseconds(250)
        var lastError: PostgresError?
        for attempt in 1...max(1, attempts) {
            do {
                let connection = try await PostgresConnection.connect(target)
                if requireSchema { try await checkSchema(connection) }
                return (connection, target)
            } catch let error as PostgresError where error.kind == .connection {
                if let hint = error.permanentHint(database: "DATABASE_URL") {
                    throw Failure.refused(error.message + "\nhint: " + hint)
                }
                lastError = error
                if attempt < attempts {
                    logger.warning(
                        "cannot connect to Postgres; retrying",
                        metadata: [
                            "attempt": "\(attempt)",
                            "retry_in_ms":
                                "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)",
                        ])
                    try? await Task.sleep(for: delay)
                    delay *= 2
                }
            }
        }
        throw Failure.unreachable(lastError?.message ?? "cannot connect to \(target.redacted)")
    }

    private func checkSchema(_ connection: PostgresConnection) async throws {
        let migrator = Migrator(connection: connection)
        let version = try await migrator.currentVersion()
        if version > Migration.latestVersion {
            throw Failure.schemaNewer(current: version, known: Migration.latestVersion)
        }
        guard version < Migration.latestVersion else { return }
        if usesEmbedded {
            _ = try await migrator.migrate()
        } else {
            throw Failure.schemaOutdated(current: version, required: Migration.latestVersion)
        }
    }
}
