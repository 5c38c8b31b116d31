import Foundation
import Testing
import TestSupport

/// `runner check` and `runner next`, run as processes and judged by output and exit code.
@Suite("runner check and runner next")
struct CheckAndNextCommandTests {
    @Test("check prints ok and exits 0 for a valid table")
    func checkValid() async throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write(
            "jobs.yaml",
            "jobs:\n  a:\n    command: [\"true\"]\n    schedule: \"@hourly\"\n  b:\n    agent: task-monitor\n    schedule: \"*/30 * * * *\"\n"
        )
        let result = try await RunnerProcess.run(["check", "--config", file.path])
        #expect(result.status == 0)
        #expect(result.stdout == "ok: 2 jobs\n")
    }

    @Test("check finds ./jobs.yaml by default and RUNNER_CONFIG when set")
    func checkDefaultPaths() async throws {
        let directory = try TemporaryDirectory()
        _ = try directory.write("jobs.yaml", "jobs:\n  a: {command: [\"true\"], schedule: \"@daily\"}\n")
        let local = try await RunnerProcess.run(["check"], currentDirectory: directory.url)
        #expect(local.stdout == "ok: 1 job\n")
        let other = try directory.write(
            "other.yaml",
            "jobs:\n  a: {command: [x], schedule: \"@daily\"}\n  b: {command: [y], schedule: \"@daily\"}\n")
        let fromEnvironment = try await RunnerProcess.run(
            ["check"], environment: ["RUNNER_CONFIG": other.path], currentDirectory: directory.url)
        #expect(fromEnvironment.stdout == "ok: 2 jobs\n")
    }

    @Test("check prints every error as PATH:LINE:COL and exits 2")
    func checkInvalid() async throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write(
            "jobs.yaml",
            "jobs:\n  a:\n    agent: nope\n    schedule: \"0 0 30 2 *\"\n  b:\n    command: [x]\n    schedule: */5 * * * *\n"
        )
        let result = try await RunnerProcess.run(["check", "--config", file.path])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        #expect(lines[0].hasPrefix("\(file.path):3:12: unknown agent \"nope\""))
        #expect(lines[1].hasPrefix("\(file.path):4:15: job \"a\", key \"schedule\": \"0 0 30 2 *\": never fires"))
        #expect(lines[2].hasPrefix("\(file.path):7:15: schedule value */5 * * * * starts with \"*\""))
        #expect(lines[3] == "3 errors in \(file.path); nothing was run")
    }

    @Test("a missing job table: one error line saying where it looked, the hint on the next, exit 2")
    func checkMissingFile() async throws {
        let result = try await RunnerProcess.run(["check", "--config", "/nonexistent/jobs.yaml"])
        #expect(result.status == 2)
        #expect(
            result.stderr
                == "error: /nonexistent/jobs.yaml: no such file: no job table at /nonexistent/jobs.yaml\n"
                + "hint: point --config or RUNNER_CONFIG at your jobs.yaml (`runner check --config PATH` checks it)\n")
        // A relative default says which folder it looked in.
        let folder = try TemporaryDirectory()
        let relative = try await RunnerProcess.run(
            ["check"], environment: ["RUNNER_CONFIG": ""], currentDirectory: folder.url)
        #expect(relative.status == 2)
        #expect(
            relative.stderr.hasPrefix("error: jobs.yaml: no such file: no job table at jobs.yaml in "),
            "\(relative.stderr)")
    }

    @Test("help text: every paragraph is one line that the terminal wraps, never broken mid-sentence")
    func helpParagraphs() async throws {
        let root = try await RunnerProcess.run(["--help"], environment: ["COLUMNS": "1000"])
        // The subcommands, and theirs: `outbox show`, `db url`.
        var commands: [[String]] = [[]]
        func subcommands(of output: String) -> [String] {
            guard let section = output.range(of: "SUBCOMMANDS:\n") else { return [] }
            return output[section.upperBound...].split(separator: "\n").compactMap { line in
                guard line.hasPrefix("  "), let word = line.split(separator: " ").first else { return nil }
                return String(word)
            }
        }
        for name in subcommands(of: root.stdout) {
            commands.append([name])
            let help = try await RunnerProcess.run([name, "--help"], environment: ["COLUMNS": "1000"])
            commands += subcommands(of: help.stdout).map { [name, $0] }
        }
        #expect(commands.count > 15, "\(commands)")
        for command in commands {
            let help = try await RunnerProcess.run(command + ["--help"], environment: ["COLUMNS": "1000"])
            #expect(help.status == 0, "\(command)")
            let prose = help.stdout.components(separatedBy: "\nUSAGE:").first ?? ""
            var previous = ""
            for line in prose.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
                // Two prose lines in a row (examples are indented) are a paragraph broken by hand.
                let isProse = { (text: String) in !text.isEmpty && !text.hasPrefix(" ") }
                #expect(
                    !(isProse(previous) && isProse(line)),
                    "runner \(command.joined(separator: " ")): \"\(previous)\" / \"\(line)\"")
                previous = line
            }
        }
    }

    @Test("every error is one lower-case error: line, a hint or the usage after it: argument errors too")
    func oneErrorStyle() async throws {
        let both = try await RunnerProcess.run(["next"])
        #expect(both.status == 2)
        #expect(both.stderr.hasPrefix("error: give either a job name or --schedule"), "\(both.stderr)")
        let limit = try await RunnerProcess.run(["history", "--limit", "0"])
        #expect(limit.stderr.hasPrefix("error: --limit must be from 1 to 100000"), "\(limit.stderr)")
        let zone = try await RunnerProcess.run(["next", "--schedule", "@daily", "--timezone", "Mars/Base"])
        #expect(
            zone.stderr
                == "error: unknown time zone \"Mars/Base\"\nhint: use an IANA name such as Europe/London or America/New_York\n"
        )
        let directory = try TemporaryDirectory()
        let table = try directory.write("jobs.yaml", "jobs:\n  a: {command: [\"true\"], schedule: \"@daily\"}\n")
        let unknown = try await RunnerProcess.run(["once", "b", "--config", table.path])
        #expect(unknown.status == 2)
        #expect(unknown.stderr == "error: no job \"b\" in \(table.path)\nhint: its jobs: a\n")
    }

    @Test("an empty or comment-only table, or a folder given as --config, is an error with exit 2")
    func emptyTableAndFolder() async throws {
        let directory = try TemporaryDirectory()
        for text in ["", "# nothing yet\n", "\n\n"] {
            let file = try directory.write("jobs.yaml", text)
            let result = try await RunnerProcess.run(["check", "--config", file.path])
            #expect(result.status == 2)
            #expect(result.stderr.contains("jobs.yaml:1:1: the file holds no jobs"))
        }
        let folder = try await RunnerProcess.run(["check", "--config", directory.url.path])
        #expect(folder.status == 2)
        #expect(folder.stderr.contains("this is a folder, not a file"))
        #expect(!folder.stderr.contains("NSCocoaErrorDomain"))
    }

    @Test("durations and @every above 100 years are refused with line and column")
    func hugeDurations() async throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write(
            "jobs.yaml",
            "jobs:\n  a:\n    command: [\"true\"]\n    schedule: \"@every 106751992d\"\n    timeout: 36526d\n")
        let result = try await RunnerProcess.run(["check", "--config", file.path])
        #expect(result.status == 2)
        #expect(
            result.stderr.contains(
                "jobs.yaml:4:15: job \"a\", key \"schedule\": \"@every 106751992d\": @every 106751992d is longer than 100 years"
            ))
        #expect(
            result.stderr.contains("jobs.yaml:5:14: job \"a\", key \"timeout\": \"36526d\" is longer than 100 years"))
    }

    @Test("check reports an unset variable naming the job and key, and never prints other values")
    func checkUnsetVariable() async throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write(
            "jobs.yaml",
            "jobs:\n  insights:\n    agent: insight-generator\n    schedule: \"@hourly\"\n    database: \"${RUNNER_TEST_UNSET_URL}\"\n"
        )
        let result = try await RunnerProcess.run(["check", "--config", file.path])
        #expect(result.status == 2)
        #expect(
            result.stderr.contains(
                "5:15: job \"insights\", key \"database\": environment variable RUNNER_TEST_UNSET_URL is not set"))
    }

    @Test("next prints ISO-8601 instants with offsets, one per line")
    func nextSchedule() async throws {
        let result = try await RunnerProcess.run([
            "next", "--schedule", "30 2 * * *", "--timezone", "Europe/Berlin", "--after", "2026-03-28T12:00:00Z",
            "--count", "3",
        ])
        #expect(result.status == 0)
        #expect(result.stdout == "2026-03-29T03:00:00+02:00\n2026-03-30T02:30:00+02:00\n2026-03-31T02:30:00+02:00\n")
    }

    @Test("next of a job uses the job's schedule and time zone")
    func nextJob() async throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write(
            "jobs.yaml",
            "jobs:\n  reminders:\n    agent: timesheet-drafter\n    schedule: \"0 16 * * FRI\"\n    timezone: Europe/London\n"
        )
        let result = try await RunnerProcess.run([
            "next", "reminders", "--config", file.path, "--after", "2026-10-20T00:00:00+02:00", "--count", "2",
        ])
        #expect(result.status == 0)
        #expect(result.stdout == "2026-10-23T16:00:00+01:00\n2026-10-30T16:00:00+00:00\n")
        let missing = try await RunnerProcess.run(["next", "nope", "--config", file.path])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("no job \"nope\""))
    }

    @Test("next finds the next leap day from 2026")
    func nextLeapDay() async throws {
        let result = try await RunnerProcess.run([
            "next", "--schedule", "0 0 29 2 *", "--after", "2026-03-01T00:00:00Z", "--count", "2",
        ])
        #expect(result.stdout == "2028-02-29T00:00:00+00:00\n2032-02-29T00:00:00+00:00\n")
    }

    @Test(
        "next rejects bad input with exit 2",
        arguments: [
            ["next", "--schedule", "0 0 30 2 *"],
            ["next", "--schedule", "61 * * * *"],
            ["next", "--schedule", "@daily", "--timezone", "Mars/Base"],
            ["next", "--schedule", "@daily", "--after", "yesterday"],
            ["next"],
            ["next", "--schedule", "@daily", "--count", "0"],
            ["frobnicate"],
        ])
    func nextRejects(arguments: [String]) async throws {
        let result = try await RunnerProcess.run(arguments)
        #expect(result.status == 2, "\(arguments): \(result.stderr)")
        #expect(!result.stderr.isEmpty)
    }

    @Test("help describes the commands and exits 0")
    func help() async throws {
        let result = try await RunnerProcess.run(["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("check"))
        #expect(result.stdout.contains("next"))
        let nextHelp = try await RunnerProcess.run(["next", "--help"])
        #expect(nextHelp.status == 0)
        #expect(nextHelp.stdout.contains("--schedule"))
    }
}
