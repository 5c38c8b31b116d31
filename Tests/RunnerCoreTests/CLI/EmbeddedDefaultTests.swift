import Foundation
import Testing

@testable import RunnerCore

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
            let once = try await runner("once", "hello")
            #expect(once.status == 0, "\(once.stderr)")
            #expect(once.stdout.hasPrefix("run 1 of hello succeeded"))
            let notices = once.stderr.split(separator: "\n").filter { $0.contains("DATABASE_URL is not set") }
            #expect(notices.count == 1)
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
}
