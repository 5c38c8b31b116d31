import Foundation
import Testing

@testable import Engine
@testable import PostgresClient
@testable import Cron
@testable import EmbeddedPostgres
@testable import Ledger
import TestSupport

/// A scheduler started before its database (a deploy or a reboot in the wrong order) waits for
/// it instead of exiting (issue 26).
@Suite("runner schedule started before its database, real processes")
struct StartBeforeDatabaseTests {
    typealias Schedule = ScheduleCommandTests

    @Test("started 15 s before its database: /health says 503 meanwhile, one log line, and the first slot runs once it is up")
    func waitsForDatabase() async throws {
        let directory = try TemporaryDirectory()
        let cluster = EmbeddedPostgres(home: directory.url.appendingPathComponent("pg"))
        try await cluster.start()
        try await withCleanup {
            let url = cluster.connectionString()
            let setupConnection = try await PostgresConnection.connect(url)
            _ = try await Migrator(connection: setupConnection).migrate()
            await setupConnection.close()
            try await cluster.stop()
            let config = try directory.write(
                "jobs.yaml", "jobs:\n  second: {command: [\"true\"], schedule: \"* * * * * *\"}\n")
            let port = try EmbeddedPostgres.freePort()
            let log = directory.url.appendingPathComponent("scheduler.log")
            let launchedAt = ContinuousClock.now
            let scheduler = try RunnerProcess.launch(
                ["schedule", "--http", "127.0.0.1:\(port)"],
                environment: ["DATABASE_URL": url.raw, "RUNNER_CONFIG": config.path], log: log)
            try await withCleanup {
                let waiting = try await eventually(within: .seconds(20)) {
                    let (status, body) = try await StatusServerTests.get("http://127.0.0.1:\(port)/health")
                    return status == 503 && body.contains("waiting for the database")
                }
                #expect(waiting, "\(Schedule.log(log).suffix(1500))")
                #expect(scheduler.isRunning, "it exited: \(Schedule.log(log).suffix(1500))")
                try await Task.sleep(for: max(.zero, .seconds(15) - (ContinuousClock.now - launchedAt)))
                try await cluster.start()
                let upAt = Date()
                let ran = try await eventually(within: .seconds(60)) {
                    guard let check = try? await PostgresConnection.connect(url) else { return false }
                    let count = try await check.query(
                        "SELECT count(*) AS n FROM runner.runs WHERE status = 'succeeded'").first?.int("n") ?? 0
                    await check.close()
                    return count >= 1
                }
                #expect(ran, "no run after the database came up: \(Schedule.log(log).suffix(1500))")
                let healthy = try await eventually(within: .seconds(20)) {
                    try await StatusServerTests.get("http://127.0.0.1:\(port)/health").0 == 200
                }
                #expect(healthy, "\(Schedule.log(log).suffix(1500))")
                #expect(try await Schedule.stop(scheduler) == 0, "\(Schedule.log(log).suffix(1500))")
                let text = Schedule.log(log)
                #expect(text.components(separatedBy: "waiting for it").count - 1 == 1, "\(text.suffix(1500))")
                #expect(text.contains("the database answers; starting"))
                print("started before its database: first run \(Date().timeIntervalSince(upAt)) s after it came up")
            } cleanup: {
                if scheduler.isRunning { _ = try? await Schedule.stop(scheduler) }
            }
        } cleanup: {
            try? await cluster.stop()
        }
    }

    @Test("SIGTERM while waiting for the database: exits 0 at once")
    func stopWhileWaiting() async throws {
        let directory = try TemporaryDirectory()
        let config = try directory.write(
            "jobs.yaml", "jobs:\n  second: {command: [\"true\"], schedule: \"* * * * * *\"}\n")
        let port = try EmbeddedPostgres.freePort()
        let log = directory.url.appendingPathComponent("scheduler.log")
        let scheduler = try RunnerProcess.launch(
            ["schedule"], environment: ["DATABASE_URL": "postgresql://nobody@127.0.0.1:\(port)/none", "RUNNER_CONFIG": config.path],
            log: log)
        let waiting = try await eventually(within: .seconds(20)) { Schedule.log(log).contains("waiting for it") }
        #expect(waiting, "\(Schedule.log(log).suffix(1500))")
        #expect(try await Schedule.stop(scheduler, within: .seconds(10)) == 0, "\(Schedule.log(log).suffix(1500))")
    }

    @Test("--http on a port another process holds: exit 2 naming the address, after a few seconds' tries")
    func portTaken() async throws {
        let holder = try await TestHTTPServer(routes: [:])
        let setup = try await CLISetup(
            "porttaken", jobs: "jobs:\n  second: {command: [\"true\"], schedule: \"* * * * * *\"}\n")
        let log = setup.directory.url.appendingPathComponent("scheduler.log")
        let scheduler = try RunnerProcess.launch(
            ["schedule", "--http", "127.0.0.1:\(holder.port)"], environment: setup.environment, log: log)
        // Before the change it ran on without its server: stopped here, that fails.
        let status = try await Schedule.stop(scheduler, with: nil, within: .seconds(60))
        #expect(status == 2, "\(Schedule.log(log).suffix(1500))")
        #expect(Schedule.log(log).contains("cannot listen on 127.0.0.1:\(holder.port)"), "\(Schedule.log(log).suffix(1500))")
        #expect(try await setup.count("SELECT count(*) FROM runner.runs") == 0, "it ran jobs without its server")
    }
}
