import Foundation
import Testing

@testable import Engine
@testable import PostgresClient
import TestSupport

/// With no DATABASE_URL the runner starts its own PostgreSQL under RUNNER_HOME.
@Suite("The embedded default")
struct EmbeddedDefaultTests {
    @Test("once, history and db url/stop work with no DATABASE_URL")
    func endToEnd() async throws {
        let directory = try TemporaryDirectory()
        let config = try directory.write(
            "jobs.yaml", "jobs:\n  hello: {command: [\"echo\", \"hi\"], schedule: \"0 0 1 1 *\", catchup: 400d}\n")
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = ""
        environment["RUNNER_HOME"] = directory.url.appendingPathComponent("home").path
        environment["RUNNER_CONFIG"] = config.path
        func runner(_ arguments: String...) async throws -> RunnerProcess.Result {
            try await RunnerProcess.run(arguments, environment: environment, currentDirectory: directory.url)
        }
        // Stopped whether the test passed or threw, awaited: an async defer.
        try await withCleanup {
            let once = try await runner("once", "hello", "--embedded")
            #expect(once.status == 0, "\(once.stderr)")
            #expect(once.stdout.hasPrefix("run 1 of hello succeeded"))
            let notices = once.stderr.split(separator: "\n").filter { $0.contains("DATABASE_URL is not set") }
            #expect(notices.count == 1)
            environment["RUNNER_EMBEDDED"] = "1"
            #expect(try await runner("once", "hello").stdout.contains("already ran"))
            #expect(try await runner("history").stdout.contains("hello"))

            let url = try await runner("db", "url")
            #expect(url.status == 0)
            #expect(url.stdout.hasPrefix("postgresql:///runner?host="))
            let connection = try await PostgresConnection.connect(
                ConnectionString(url.stdout.trimmingCharacters(in: .newlines)))
            #expect(try await connection.query("SELECT count(*) AS n FROM runner.runs").first?.int("n") == 1)
            await connection.close()

            let stop = try await runner("db", "stop")
            #expect(stop.stdout.hasPrefix("stopped the embedded PostgreSQL"))
            #expect(try await runner("db", "stop").stdout.contains("is not running"))
        } cleanup: {
            _ = try? await RunnerProcess.run(["db", "stop"], environment: environment, currentDirectory: directory.url)
        }
    }

    /// A platform with DATABASE_URL forgotten: no terminal on stdin, no opt-in. Each of the
    /// commands a platform runs stops at once with exit 2, says what is missing, and creates no
    /// cluster (a ledger that would die with the container).
    @Test("with no DATABASE_URL and no terminal, once, schedule, backfill and migrate exit 2 and start nothing")
    func refusedWithoutTerminal() async throws {
        let directory = try TemporaryDirectory()
        let config = try directory.write(
            "jobs.yaml", "jobs:\n  hello: {command: [\"echo\", \"hi\"], schedule: \"* * * * *\"}\n")
        let environment = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": directory.url.path,
            "RUNNER_CONFIG": config.path,
        ]
        for arguments in [
            ["once", "hello"], ["schedule"], ["migrate"],
            ["backfill", "hello", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T00:05:00Z"],
        ] {
            let result = try await RunnerProcess.run(
                arguments, environment: environment, currentDirectory: directory.url, clearEnvironment: true)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stderr.hasPrefix("error: DATABASE_URL is not set"), "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("--embedded"), "\(arguments)")
            #expect(result.stdout.isEmpty, "\(arguments)")
        }
        #expect(!FileManager.default.fileExists(atPath: directory.url.appendingPathComponent(".runner").path))
    }
}
