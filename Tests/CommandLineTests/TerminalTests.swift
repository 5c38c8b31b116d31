import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Redaction
@testable import ZOARK
@testable import Demo
import TestSupport

/// Text from outside reaches a terminal only through one sanitiser (issue 26): escape sequences
/// from a command's output, a product's rows, a job table and another operator's pause reason are
/// shown, never obeyed.
@Suite("The terminal sanitiser, from every source")
struct TerminalTests {
    /// A screen clear, an OSC 52 clipboard write (ended by BEL), a carriage return that would
    /// overwrite the line, a C1 CSI and a right-to-left override.
    static let hostile = "\u{1B}[2J\u{1B}]52;c;ZXZpbA==\u{07}\rFAKE\u{9B}31m\u{202E}txt"

    /// No control character a terminal acts on (but newline and tab), nor a bidi override.
    static func clean(_ text: String) -> Bool {
        !text.unicodeScalars.contains { TerminalText.needsEscape($0, keepingNewlines: true) }
    }

    @Test("controls are shown as escapes, newlines and tabs kept; plain text is untouched")
    func sanitiser() {
        #expect(
            TerminalText.safe(Self.hostile)
                == #"\x1b[2J\x1b]52;c;ZXZpbA==\x07\rFAKE\u009b31m\u202etxt"#)
        #expect(TerminalText.safe("a\tb\nc") == "a\tb\nc")
        #expect(TerminalText.safe("a\tb\nc", keepingNewlines: false) == #"a\tb\nc"#)
        #expect(TerminalText.safe("plain — ünïcödé ✓") == "plain — ünïcödé ✓")
        #expect(TerminalText.safe("\u{0}\u{7F}") == #"\x00\x7f"#)
        // A log line's value: one line, shown.
        #expect(LogfmtLogHandler.logfmtValue("x\u{1B}[2Jy\nz") == #""x\\x1b[2Jy\nz""#)
    }

    @Test("a command's output, a pause reason and a job name reach once, history, the log and check escaped")
    func commandsAndTables() async throws {
        let setup = try await CLISetup(
            "terminal",
            jobs: """
                jobs:
                  noisy:
                    command: ["sh", "-c", "printf 'ok\\\\033[2J\\\\033]52;c;ZXZpbA==\\\\007\\\\rFAKE\\\\n' >&2; exit 1"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    retries: {max: 0}
                """)
        let once = try await setup.runner("once", "noisy")
        #expect(once.status == 1)
        #expect(once.stdout.contains(#"\x1b[2J"#) && once.stdout.contains(#"\r"#), "\(once.stdout.debugDescription)")
        #expect(Self.clean(once.stdout), "once: \(once.stdout.debugDescription)")
        #expect(Self.clean(once.stderr), "the log line: \(once.stderr.debugDescription)")
        let history = try await setup.runner("history")
        #expect(history.stdout.contains("noisy") && Self.clean(history.stdout), "\(history.stdout.debugDescription)")
        // Another operator's pause reason, read by the next caller.
        #expect(try await setup.runner("pause", "noisy", "--reason", "db \(Self.hostile)").status == 0)
        let paused = try await setup.runner("once", "noisy")
        for result in [paused, try await setup.runner("status")] {
            #expect(Self.clean(result.stdout) && Self.clean(result.stderr), "\(result.stdout.debugDescription)")
        }
        // A job name in the YAML (double-quoted: \e is ESC) in runner check's error.
        let bad = try setup.directory.write(
            "bad.yaml", "jobs:\n  \"x\\e[2J\\ry\": {command: [\"true\"], schedule: \"@daily\"}\n")
        let check = try await setup.runner("check", "--config", bad.path)
        #expect(check.status == 2)
        #expect(check.stderr.contains(#"\x1b[2J\ry"#) && Self.clean(check.stderr), "\(check.stderr.debugDescription)")
    }

    @Test("a task title from the product's database reaches outbox, outbox show and preview escaped")
    func productRows() async throws {
        let setup = try await CLISetup(
            "terminalrows",
            jobs: """
                jobs:
                  stuck: {agent: task-monitor, schedule: "*/30 * * * *", with: {stuck_after: 48h}}
                """)
        try await setup.connection.execute(ZoarkSchema.sql)
        try await setup.connection.execute(DemoData.zoark)
        try await setup.connection.query(
            #"UPDATE "Task" SET "title" = $1 WHERE "id" = 'demo-t02'"#, [PostgresValue("Order \(Self.hostile)")])
        let once = try await setup.runner("once", "stuck")
        #expect(once.status == 0, "\(once.stderr)")
        let list = try await setup.runner("outbox", "--json")
        guard case .array(let emails)? = JSONValue.parse(list.stdout),
            case .number(let number)? = emails.first?["id"]
        else {
            Issue.record("outbox --json printed \(list.stdout) \(list.stderr)")
            return
        }
        let id = String(Int(number))
        for arguments in [
            ["outbox"], ["outbox", "show", id], ["outbox", "show", id, "--html"], ["preview", "stuck", "--all"],
        ] {
            let result = try await RunnerProcess.run(
                arguments, environment: setup.environment, currentDirectory: setup.directory.url)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            #expect(Self.clean(result.stdout), "\(arguments): \(result.stdout.debugDescription)")
        }
        let show = try await setup.runner("outbox", "show", id)
        #expect(show.stdout.contains(#"Order \x1b[2J"#), "\(show.stdout)")
    }
}
