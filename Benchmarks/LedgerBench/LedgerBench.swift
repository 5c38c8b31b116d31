import BenchmarkSupport
import Foundation
import JobTable
import Ledger
import PostgresClient
import Engine

// Claim throughput: 8 claimers, each with its own connection, race for every one of 10,000
// slots of one job, as 8 scheduler replicas would; the winner of a slot marks its run finished.
// Prints claims won per second, attempts per second, and checks that every slot was won once.
//
// Run: swift run -c release ledger-bench [CONNECTION-STRING]
// Default: the embedded PostgreSQL (RUNNER_HOME, else ./.runner). A fresh database is used.

@main
struct LedgerBench {
    static func main() async throws {
        let claimers = Int(ProcessInfo.processInfo.environment["CLAIMERS"] ?? "") ?? 8
        let slots = Int(ProcessInfo.processInfo.environment["SLOTS"] ?? "") ?? 10_000

        let server = try await BenchmarkDatabase.fromArguments()
        let (name, url, setup) = try await server.fresh("ledger_bench")

        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let connections = try await withThrowingTaskGroup(of: PostgresConnection.self) { group in
            for _ in 0..<claimers { group.addTask { try await PostgresConnection.connect(url) } }
            var all: [PostgresConnection] = []
            for try await connection in group { all.append(connection) }
            return all
        }
        var failed = false
        print("claimers: \(claimers), slots: \(slots), attempts per mode: \(claimers * slots)")
        // Round trip of the connection layer alone, for scale.
        let pingClock = ContinuousClock()
        let pingStart = pingClock.now
        for _ in 0..<2000 { try await setup.query("SELECT 1") }
        let ping = pingClock.now - pingStart
        print(
            String(
                format: "SELECT 1 round trip: %.0f µs",
                Double(ping.components.attoseconds) / 1e12 / 2000 + Double(ping.components.seconds) * 1e6 / 2000))
        // Lock-step: every claimer asks for slot n at the same moment, as replicas firing
        // the same schedule do (the worst case). Staggered: each starts at its own offset.
        for (staggered, skipIfRunning) in [(false, false), (false, true), (true, true)] {
            let job = "bench-\(staggered ? "staggered" : "lockstep")-\(skipIfRunning ? "skip" : "allow")"
            let clock = ContinuousClock()
            let began = clock.now
            let wins = try await withThrowingTaskGroup(of: Int.self) { group in
                for (index, connection) in connections.enumerated() {
                    group.addTask {
                        let ledger = Ledger(connection: connection, namespace: JobTable.defaultNamespace)
                        var won = 0
                        for step in 0..<slots {
                            let slot = staggered ? (step + index * slots / claimers) % slots : step
                            let instant = start.addingTimeInterval(Double(slot) * 60)
                            let result = try await ledger.claim(
                                Ledger.ClaimRequest(
                                    job: job, slot: instant, slotKey: Ledger.slotKey(for: instant), trigger: .schedule,
                                    claimedBy: "bench:\(index)", lease: .seconds(30), skipIfRunning: skipIfRunning))
                            // A replica finishes what it claims; runs left `running` would make
                            // every later overlap check scan them all.
                            if case .claimed(let runID) = result {
                                won += 1
                                try await ledger.finish(
                                    runID: runID, job: job, status: .succeeded, durationMs: 0, outcome: nil,
                                    error: nil, metrics: [])
                            }
                        }
                        return won
                    }
                }
                var total = 0
                for try await won in group { total += won }
                return total
            }
            let elapsed = clock.now - began
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let check = try await setup.query(
                "SELECT count(*) AS runs, count(DISTINCT slot_key) AS slots FROM runner.runs WHERE job = $1",
                [PostgresValue(job)])
            let runs = try check.first?.int("runs") ?? -1
            let distinct = try check.first?.int("slots") ?? -1
            print(
                String(
                    format:
                        "%@ overlap %@: %.2f s, %.0f claims won/s, %.0f attempts/s; runs %d, distinct slots %d, duplicates %d",
                    staggered ? "staggered" : "lock-step", skipIfRunning ? "skip " : "allow", seconds,
                    Double(wins) / seconds,
                    Double(claimers * slots) / seconds, runs, distinct, runs - distinct))
            // Every slot has exactly one row; with overlap skip some rows are skips, not wins.
            if runs != slots || distinct != slots || (!skipIfRunning && wins != slots) { failed = true }
        }
        for connection in connections { await connection.close() }
        await setup.close()
        try await server.drop(name)
        if failed {
            print("FAIL: expected every slot won exactly once")
            Foundation.exit(1)
        }
    }
}
