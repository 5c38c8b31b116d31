import Foundation
@testable import JobTable
import StandardAgents
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Redaction
import TestSupport

/// What a command job's process sees of the databases: one connection's settings, whole.
@Suite("A command job's database environment")
struct CommandEnvironmentTests {
    static let ledger = ConnectionString("postgres://runner:ledger-pw-123@ledger.internal:5432/runner")

    static func job(_ extra: String) throws -> Job {
        let text = "jobs:\n  j:\n    command: [\"psql\"]\n    schedule: \"@daily\"\n" + extra
        let table = try JobTableLoader(environment: ["REPORTS_URL": "postgres://rep:rep-pw-456@reports.internal/rep"], agents: .standard)
            .load(text: text, path: "jobs.yaml")
        return try #require(table.jobs.first)
    }

    @Test("by default the ledger's connection, as DATABASE_URL and PG*")
    func ledgerByDefault() throws {
        let environment = RunExecutor.commandEnvironment(
            for: try Self.job(""), from: ["PATH": "/bin"], ledger: Self.ledger)
        #expect(environment["DATABASE_URL"] == Self.ledger.raw)
        #expect(environment["PGHOST"] == "ledger.internal" && environment["PGDATABASE"] == "runner")
        #expect(environment["PGUSER"] == "runner" && environment["PGPASSWORD"] == "ledger-pw-123")
    }

    @Test("a job's own DATABASE_URL, or its database:, decides the PG* variables too")
    func ownDatabase() throws {
        for extra in ["    env: {DATABASE_URL: \"${REPORTS_URL}\"}\n", "    database: \"${REPORTS_URL}\"\n"] {
            let environment = RunExecutor.commandEnvironment(
                for: try Self.job(extra), from: ["PATH": "/bin"], ledger: Self.ledger)
            #expect(environment["DATABASE_URL"] == "postgres://rep:rep-pw-456@reports.internal/rep", "\(extra)")
            #expect(environment["PGHOST"] == "reports.internal" && environment["PGPASSWORD"] == "rep-pw-456")
            #expect(!environment.values.contains { $0.contains("ledger-pw-123") }, "the ledger's password: \(extra)")
        }
    }

    @Test("a job that sets any PG* variable itself gets none of the ledger's (no password sent to its host)")
    func ownPGSettings() throws {
        let environment = RunExecutor.commandEnvironment(
            for: try Self.job("    env: {PGHOST: other.internal}\n"), from: ["PATH": "/bin"], ledger: Self.ledger)
        #expect(environment["PGHOST"] == "other.internal")
        #expect(environment["PGUSER"] == nil && environment["PGPASSWORD"] == nil && environment["PGDATABASE"] == nil)
    }

    @Test("empty settings of runner's own environment are not passed on (an empty SSL_CERT_FILE trusts nothing)")
    func emptyValues() throws {
        let environment = RunExecutor.commandEnvironment(
            for: try Self.job(""), from: ["PATH": "/bin", "SSL_CERT_FILE": "", "SSL_CERT_DIR": "/etc/ssl/certs"],
            ledger: nil)
        #expect(environment["SSL_CERT_FILE"] == nil && environment["SSL_CERT_DIR"] == "/etc/ssl/certs")
    }

    @Test("the redactor masks a database password as libpq hands it on: percent-decoded, or from key=value pairs")
    func redactsWhatCommandsSee() {
        let redact = Redactor(environment: [
            "DATABASE_URL": "postgres://app:p%40ss-w0rd%2Flong@db/app",
            "VECTOROS_DATABASE_URL": "host=db2 user=app password=kv-s3cret-value dbname=vec",
        ])
        #expect(redact("PGPASSWORD=p@ss-w0rd/long") == "PGPASSWORD=[redacted]")
        #expect(redact("auth failed for kv-s3cret-value") == "auth failed for [redacted]")
    }
}
