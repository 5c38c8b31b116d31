import Foundation
import Logging
import Testing

@testable import RunnerCore

/// A claim refused by a fault that may pass (here a revoked INSERT grant, as a full disk or a
/// failover would refuse it) is tried again until the job's next slot or the end of its catchup,
/// whichever comes first; the shutdown's gate stops the tries.
@Suite("Claims refused for a while")
struct ClaimRetryTests {
    /// A ledger on a role that may not insert runs, the runner on it, and the owner's connection.
    static func refusing(_ label: String) async throws -> (OnceRunner, PostgresConnection, grant: String) {
        let (_, owner) = try await TestDatabase.migrated(label)
        let (role, url) = try await TestDatabase.restrictedRole("claims", on: owner)
        try await owner.execute("REVOKE INSERT ON runner.runs FROM \(role)")
        let executor = RunExecutor(
            ledger: Ledger(connection: try await PostgresConnection.connect(url)), logger: SchedulerTests.quiet,
            heartbeatInterval: .seconds(1), environment: ["PATH": "/usr/bin:/bin"])
        return (OnceRunner(executor: executor), owner, "GRANT INSERT ON runner.runs TO \(role)")
    }

    static func job(catchup: String) throws -> Job {
        let table = try JobTableLoader(environment: [:]).load(
            text: "jobs:\n  hourly: {command: [\"true\"], schedule: \"0 * * * *\", catchup: \(catchup)}\n",
            path: "jobs.yaml")
        return try #require(table.jobs.first)
    }

    static let slot = SchedulerTests.at("2026-05-01T10:00:00Z")

    @Test("the window: until the next slot or the end of catchup, whichever is first, from the call")
    func window() throws {
        #expect(OnceRunner.claimWindow(try Self.job(catchup: "1m"), slot: Self.slot, now: Self.slot) == .seconds(60))
        #expect(
            OnceRunner.claimWindow(try Self.job(catchup: "1m"), slot: Self.slot, now: Self.slot.addingTimeInterval(4))
                == .seconds(56))
        // An hourly job with a 2 h catchup stops trying when its next slot comes.
        #expect(OnceRunner.claimWindow(try Self.job(catchup: "2h"), slot: Self.slot, now: Self.slot) == .seconds(3600))
        #expect(
            OnceRunner.claimWindow(try Self.job(catchup: "1m"), slot: Self.slot, now: Self.slot.addingTimeInterval(61))
                == .zero)
    }

    @Test("a claim refused until the grant comes back runs the slot once, late")
    func landsLate() async throws {
        let (runner, owner, grant) = try await Self.refusing("claimretry_late")
        let job = try Self.job(catchup: "1m")
        let granting = Task {
            try await Task.sleep(for: .seconds(1))
            try await owner.execute(grant)
        }
        let outcome = try await runner.runSlot(
            job, slot: Self.slot, now: Self.slot.addingTimeInterval(1), trigger: .schedule, retry: false)
        try await granting.value
        guard case .ran(let record, _) = outcome else {
            Issue.record("not run: \(outcome)")
            return
        }
        #expect(record.status == .succeeded)
        #expect(try await owner.query("SELECT count(*) AS n FROM runner.runs").first?.int("n") == 1)
    }

    @Test("a claim still refused when its window ends throws the refusal and writes nothing")
    func windowEnds() async throws {
        let (runner, owner, _) = try await Self.refusing("claimretry_ends")
        let started = ContinuousClock.now
        await #expect {
            _ = try await runner.runSlot(
                try Self.job(catchup: "1m"), slot: Self.slot, now: Self.slot.addingTimeInterval(58),
                trigger: .schedule, retry: false)
        } throws: { ($0 as? PostgresError)?.sqlState == "42501" }
        // It tried for its 2 s window, not once.
        #expect(ContinuousClock.now - started >= .seconds(2))
        #expect(try await owner.query("SELECT count(*) AS n FROM runner.runs").first?.int("n") == 0)
    }

    @Test("a closed gate (a shutdown) ends the tries within their 2 s wait")
    func gateStops() async throws {
        let (runner, _, _) = try await Self.refusing("claimretry_gate")
        let closing = Task {
            try await Task.sleep(for: .milliseconds(600))
            runner.gate.close()
        }
        await #expect(throws: OnceRunner.ClaimsStopped.self) {
            _ = try await runner.runSlot(
                try Self.job(catchup: "1h"), slot: Self.slot, now: Self.slot, trigger: .schedule, retry: false)
        }
        try await closing.value
    }
}
