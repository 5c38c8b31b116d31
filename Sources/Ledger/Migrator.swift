import PostgresClient

/// Applies the ledger's migrations under a transaction-level advisory lock, so replicas that
/// start at once apply each migration exactly once (and it works behind PgBouncer, where
/// session locks do not).
public struct Migrator: Sendable {
    public struct Report: Sendable, Equatable {
        public let applied: [Int]
        public let version: Int
    }

    /// The lock key: a fixed number ("runner" in ASCII) all runner processes agree on.
    package static let lockKey = 0x72_75_6E_6E_65_72

    package let connection: PostgresConnection
    package let migrations: [Migration]

    public init(connection: PostgresConnection, migrations: [Migration] = Migration.all) {
        self.connection = connection
        self.migrations = migrations
    }

    public func migrate() async throws -> Report {
        let migrations = self.migrations
        return try await connection.transaction { connection in
            try connection.query("SELECT pg_advisory_xact_lock($1::bigint)", [.int(Self.lockKey)])
            try connection.execute(
                """
                CREATE SCHEMA IF NOT EXISTS runner;
                CREATE TABLE IF NOT EXISTS runner.schema_migrations (
                    version     integer PRIMARY KEY,
                    name        text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                );
                """)
            let done = Set(
                try connection.query("SELECT version FROM runner.schema_migrations").compactMap {
                    try $0.int("version")
                })
            var applied: [Int] = []
            for migration in migrations where !done.contains(migration.version) {
                try connection.execute(migration.sql)
                try connection.query(
                    "INSERT INTO runner.schema_migrations (version, name) VALUES ($1::integer, $2)",
                    [.int(migration.version), PostgresValue(migration.name)])
                applied.append(migration.version)
            }
            return Report(applied: applied, version: max(done.max() ?? 0, applied.max() ?? 0))
        }
    }

    /// The applied version, or 0 when the schema does not exist yet.
    /// One statement on the path every command takes (the table is there but on a fresh
    /// database): a missing table or schema reads as version 0.
    public func currentVersion() async throws -> Int {
        let rows: PostgresRows
        do throws(PostgresError) {
            rows = try await connection.query(
                "SELECT coalesce(max(version), 0) AS version FROM runner.schema_migrations")
        } catch {
            if error.isUndefinedTable { return 0 }
            throw error
        }
        return try rows.first?.int("version") ?? 0
    }
}
