import Foundation
@testable import JobTable
import Logging
import StandardAgents
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Ledger
import TestSupport

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
            ledger: Ledger(connection: try await PostgresConnection.connect(url)), agents: .standard, logger: SchedulerTests.quiet,
            heartbeatInterval: .seconds(1), environment: ["PATH": "/usr/bin:/bin"])
        return (OnceRunner(executor: executor), owner, "GRANT INSERT ON runner.runs TO \(role)")
    }

    static func job(catchup: String) throws -> Job {
        let table = try JobTableLoader(environment: [:], agents: .standard).load(
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

    @Test("a claim still refused when its window ends says so and writes nothing")
    func windowEnds() async throws {
        let (runner, owner, _) = try await Self.refusing("claimretry_ends")
        let started = ContinuousClock.now
        await #expect {
            _ = try await runner.runSlot(
                try Self.job(catchup: "1m"), slot: Self.slot, now: Self.slot.addingTimeInterval(58),
                trigger: .schedule, retry: false)
        } throws: {
            // The last try came at the window's end: refused there, or (on a slow machine) its
            // refusal came back after it.
            $0 is OnceRunner.ClaimWindowEnded || ($0 as? PostgresError)?.sqlState == "42501"
        }
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
                // A gate that did not stop them: tried for the minute, then "not claimed before…".
                try Self.job(catchup: "1m"), slot: Self.slot, now: Self.slot, trigger: .schedule, retry: false)
        }
        try await closing.value
    }

    @Test("a claim that reaches its INSERT after its claimBy writes nothing (tooLate)")
    func claimByRefuses() async throws {
        let (_, connection) = try await TestDatabase.migrated("claimretry_by")
        let ledger = Ledger(connection: connection)
        func request(_ key: String, by: ContinuousClock.Instant?, skip: Bool) -> Ledger.ClaimRequest {
            Ledger.ClaimRequest(
                job: "hourly", slot: Self.slot, slotKey: key, trigger: .schedule, claimedBy: "test",
                lease: .seconds(30), skipIfRunning: skip, claimBy: by)
        }
        let past = ContinuousClock.now - .milliseconds(1)
        // Both forms of the claim: the plain INSERT and the overlap-checking transaction.
        #expect(try await ledger.claim(request("late-plain", by: past, skip: false)) == .tooLate)
        #expect(try await ledger.claim(request("late-skip", by: past, skip: true)) == .tooLate)
        #expect(try await connection.query("SELECT count(*) AS n FROM runner.runs").first?.int("n") == 0)
        let later = ContinuousClock.now + .seconds(60)
        guard case .claimed = try await ledger.claim(request("in-time", by: later, skip: false)) else {
            Issue.record("a claim within its window was refused")
            return
        }
    }

    @Test("a try whose INSERT committed before its answer was lost: the next try finds its own row and runs it, once")
    func ownClaimAdopted() async throws {
        let (runner, owner, _) = try await Self.refusing("claimretry_own")
        let role = try #require(
            try await owner.query("SELECT grantee FROM information_schema.role_table_grants WHERE table_name = 'runs' AND privilege_type = 'SELECT' AND grantee LIKE 'claims_%'").first?.string("grantee"))
        // The first try fails before its claim (the pause check refused); meanwhile "its" row lands.
        try await owner.execute("REVOKE SELECT ON runner.pauses FROM \(role)")
        let job = try Self.job(catchup: "1m")
        let landing = Task {
            try await Task.sleep(for: .milliseconds(100))
            try await owner.execute(
                """
                INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, claimed_by, lease_seconds)
                VALUES ('default', 'hourly', '2026-05-01T10:00:00Z', '2026-05-01T10:00:00Z', 'schedule', 1, 'running',
                        '\(Ledger.processIdentity)', 30);
                GRANT SELECT ON runner.pauses TO \(role);
                GRANT INSERT ON runner.runs TO \(role);
                """)
        }
        let outcome = try await runner.runSlot(
            job, slot: Self.slot, now: Self.slot.addingTimeInterval(1), trigger: .schedule, retry: false)
        try await landing.value
        guard case .ran(let record, _) = outcome else {
            Issue.record("the own row was not run: \(outcome)")
            return
        }
        #expect(record.status == .succeeded)
        #expect(try await owner.query("SELECT count(*) AS n FROM runner.runs").first?.int("n") == 1)
    }

    @Test("a reload that removes the job ends its claim's tries: nothing is claimed for it once the grant is back")
    func reloadEndsTries() async throws {
        let (runner, owner, grant) = try await Self.refusing("claimretry_reload")
        let job = try Self.job(catchup: "1m")
        let scheduler = Scheduler(
            jobs: [job], runner: runner, logger: SchedulerTests.quiet, now: Self.slot.addingTimeInterval(-1))
        let fired = await scheduler.tick(now: Self.slot.addingTimeInterval(1))
        #expect(fired.fires.map(\.job) == ["hourly"])
        // Its claim is refused and tried again (for up to a minute); the job leaves the table.
        try await Task.sleep(for: .milliseconds(300))
        await scheduler.reload([], now: Self.slot.addingTimeInterval(2))
        try await owner.execute(grant)
        await scheduler.waitForRuns()
        #expect(try await owner.query("SELECT count(*) AS n FROM runner.runs").first?.int("n") == 0)
    }
}
