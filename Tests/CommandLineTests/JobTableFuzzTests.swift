import Foundation
@testable import JobTable
import Testing

@testable import Engine
import TestSupport

/// Mangled job tables through `check`, `once` and `status`: no crash, exit 0, 1 or 2 only.
@Suite("Job table fuzz through the CLI")
struct JobTableFuzzTests {
    static let base = """
        defaults:
          timeout: 10s
          retries: {max: 0}
        jobs:
          first:
            command: ["true"]
            schedule: "@every 1h"
            catchup: 2h
          second:
            command: ["sh", "-c", "echo ${HOME}"]
            schedule: "*/30 * * * *"
            timezone: Europe/London
          third:
            agent: task-monitor
            schedule: "0 9 * * MON-FRI"
            with: {stuck_after: 48h, alert_to: "ops@example.com"}
        """

    static let pieces = [
        ":", "\"", "'", "*", "&a", "*a", "{", "}", "[", "]", "\n", "\n  ", "\t", "-", "#", "@every 106751992d",
        "99999999999999999999d", "0s", "${UNSET_VAR}", "${X:-}", "\u{FEFF}", "é✓", "\\", "!!binary", "? ", "|",
        "@daily", "61 * * * *", "0 0 30 2 *", "Mars/Olympus", "-1", "1e300", "NaN", "null", "~", "yes",
        String(repeating: "z", count: 5000),
    ]

    @Test("twenty mangled tables: every command exits 0, 1 or 2, never by a signal")
    func mangled() async throws {
        let setup = try await CLISetup("fuzz", jobs: Self.base)
        var random = SplitMix64(seed: 7)
        let file = setup.directory.url.appendingPathComponent("jobs.yaml")
        var seen: Set<Int32> = []
        for round in 0..<20 {
            var text = Array(Self.base)
            for _ in 0..<(1 + Int(random.next() % 4)) {
                let at = Int(random.next() % UInt64(text.count + 1))
                switch random.next() % 3 {
                case 0: text.insert(contentsOf: random.pick(Self.pieces), at: at)
                case 1: text.removeSubrange(at..<min(text.count, at + Int(random.next() % 12)))
                default:
                    let line = String(text).split(separator: "\n", omittingEmptySubsequences: false)
                    text = Array(line.shuffled(using: &random).joined(separator: "\n"))
                }
            }
            try String(text).write(to: file, atomically: true, encoding: .utf8)
            for arguments in [["check"], ["once", "first"], ["status"]] {
                let result = try await RunnerProcess.run(
                    arguments, environment: setup.environment, currentDirectory: setup.directory.url)
                seen.insert(result.status)
                #expect(
                    [0, 1, 2].contains(result.status),
                    "round \(round), runner \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr.prefix(300))\n\(String(text).prefix(400))"
                )
            }
        }
        // The mangling is not so mild that everything still passes.
        #expect(seen.contains(2))
    }
}
