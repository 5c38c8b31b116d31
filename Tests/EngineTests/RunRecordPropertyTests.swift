import Foundation
@testable import JobTable
import Logging
import StandardAgents
import Testing

@testable import Engine
@testable import Ledger
import TestSupport

/// Whatever a command prints and however it exits, its run ends in a terminal status with a
/// record the ledger can store (issue "honest under faults").
@Suite("Run records, property-based")
struct RunRecordPropertyTests {
    @Test("random bytes on stdout and stderr and random exit codes: every run ends terminal, stored, with its code")
    func randomOutput() async throws {
        let (_, connection) = try await TestDatabase.migrated("proprecords")
        let ledger = Ledger(connection: connection)
        let executor = RunExecutor(
            ledger: ledger, agents: .standard, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() },
            environment: ["PATH": "/usr/bin:/bin"])
        let directory = try TemporaryDirectory()
        var random = SplitMix64(seed: 11)
        for index in 0..<16 {
            // NUL, invalid UTF-8, lone surrogates' bytes, control characters: whatever comes.
            let outBytes = (0..<Int(random.next() % 6000)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let errBytes = (0..<Int(random.next() % 600)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let code = Int(random.next() % 256)
            try Data(outBytes).write(to: directory.url.appendingPathComponent("out\(index)"))
            try Data(errBytes).write(to: directory.url.appendingPathComponent("err\(index)"))
            let script = "cat '\(directory.url.path)/out\(index)'; cat '\(directory.url.path)/err\(index)' >&2; exit \(code)"
            let table = try JobTableLoader(environment: [:], agents: .standard).load(
                text: "jobs:\n  bytes: {command: [\"sh\", \"-c\", \"\(script)\"], schedule: \"@every 1h\", retries: {max: 0}}\n",
                path: "jobs.yaml")
            let job = try #require(table.job(named: "bytes"))
            let claim = try await ledger.claim(
                Ledger.ClaimRequest(
                    job: job.name, slot: Date(), slotKey: "case-\(index)", trigger: .manual, claimedBy: "test",
                    lease: .seconds(30), skipIfRunning: false))
            guard case .claimed(let runID) = claim else {
                Issue.record("case \(index) was not claimed: \(claim)")
                continue
            }
            let record = try await executor.execute(runID: runID, job: job, slot: Date(), dryRun: false)
            #expect(record.status == (code == 0 ? .succeeded : .failed), "case \(index), exit \(code)")
            let stored = try #require(
                try await connection.query(
                    "SELECT status, (outcome->>'exit_code')::int AS code, outcome->>'stdout_tail' AS tail FROM runner.runs WHERE id = $1::bigint",
                    [.int64(runID)]
                ).first)
            #expect(try stored.string("status") != "running")
            let whole = try await connection.query(
                "SELECT outcome::text AS o FROM runner.runs WHERE id = $1::bigint", [.int64(runID)]
            ).first?.string("o") ?? ""
            #expect(try stored.int("code") == code, "\(whole.prefix(300))")
            #expect(try stored.string("tail") != nil)
        }
    }
}
