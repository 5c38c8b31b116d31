import Foundation

import Engine
import PostgresClient
import EmbeddedPostgres
import Ledger

/// The PostgreSQL server of the test run: `DATABASE_URL` when given, else one embedded cluster
/// (the runner's own harness) under `.build/test-postgres`, started once per test run. Its
/// server TimeZone is deliberately not UTC, to prove the runner never depends on it.
///
/// Each suite gets a fresh database. There is no silent skip: if no server can be had, every
/// database test fails with the reason.
package enum TestDatabase {
    package static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../..").standardized

    package static let cluster = EmbeddedPostgres(
        home: packageRoot.appendingPathComponent(".build/test-postgres"), fast: true, tcp: true,
        serverTimeZone: "America/New_York", maxConnections: 500)

    /// The password of the `secretive` role, which logs in over TCP.
    package static let secretPassword = "s3cr3t-Pa55w0rd-XYZ"

    private static let server = Task<ConnectionString, Error> {
        if let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty {
            return ConnectionString(url)
        }
        do {
            try await cluster.start()
        } catch {
            throw TestDatabaseError(
                "cannot start the test PostgreSQL (install the postgresql package, or set DATABASE_URL): \(error)")
        }
        let admin = try await PostgresConnection.connect(cluster.connectionString(database: "postgres"))
        try await admin.execute(
            """
            DO $$ BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'secretive') THEN
                    CREATE ROLE secretive LOGIN PASSWORD '\(secretPassword)';
                END IF;
            END $$;
            """)
        let base = cluster.connectionString(database: "postgres")
        // The cluster lives under .build across runs: the databases of runs that ended are
        // dropped, beside this run's tests (68 GB had piled up on a developer's machine).
        Task.detached { await dropLeftovers(base) }
        return base
    }

    /// Every test database's name starts `t<pid>_`, the pid of the test process that made it.
    package static let prefix = "t\(getpid())_"

    /// Drops the databases of test processes that are gone (and those named before the pid was
    /// in the name); a database of a process still running (another suite beside this one) stays.
    package static func dropLeftovers(_ base: ConnectionString) async {
        guard let admin = try? await PostgresConnection.connect(base) else { return }
        let names = (try? await admin.query("SELECT datname FROM pg_database WHERE datname LIKE 't%\\_%'"))?
            .compactMap { try? $0.string("datname") } ?? []
        for name in names where isLeftover(name) {
            try? await admin.execute("DROP DATABASE IF EXISTS \"\(name)\" WITH (FORCE)")
        }
        await admin.close()
    }

    /// Whether `name` is a test database whose process has ended.
    package static func isLeftover(_ name: String) -> Bool {
        if name.hasPrefix("t_") { return true }
        guard name.first == "t", let pid = Int32(name.dropFirst().prefix { $0 != "_" }) else { return false }
        return kill(pid, 0) != 0 && errno == ESRCH
    }

    /// A new, empty database for one suite, and its connection string.
    package static func fresh(_ label: String) async throws -> ConnectionString {
        let base = try await server.value
        let name = "\(prefix)\(label.lowercased().filter { $0.isLetter || $0.isNumber })_\(UInt32.random(in: 0...UInt32.max))"
        let admin = try await PostgresConnection.connect(base)
        try await admin.execute("CREATE DATABASE \(name)")
        await admin.close()
        return base.replacingDatabase(with: name)
    }

    /// A fresh database with the runner schema migrated.
    package static func migrated(_ label: String) async throws -> (ConnectionString, PostgresConnection) {
        let url = try await fresh(label)
        let connection = try await PostgresConnection.connect(url)
        _ = try await Migrator(connection: connection).migrate()
        return (url, connection)
    }

    /// A login role on `connection`'s database with only SELECT, INSERT, UPDATE and DELETE on the
    /// ledger's tables (what a test revokes from and grants back), and a TCP connection string
    /// for it.
    package static func restrictedRole(_ prefix: String, on connection: PostgresConnection) async throws -> (
        role: String, url: ConnectionString
    ) {
        let role = "\(prefix)_\(UInt32.random(in: 0...UInt32.max))"
        let password = "pw-\(UInt32.random(in: 0...UInt32.max))"
        try await connection.execute(
            """
            CREATE ROLE \(role) LOGIN PASSWORD '\(password)';
            GRANT USAGE ON SCHEMA runner TO \(role);
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA runner TO \(role);
            GRANT USAGE ON ALL SEQUENCES IN SCHEMA runner TO \(role);
            """)
        let database = try await connection.query("SELECT current_database() AS name").first?.string("name") ?? ""
        return (role, cluster.tcpConnectionString(database: database, user: role, password: password))
    }
}

package struct TestDatabaseError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
