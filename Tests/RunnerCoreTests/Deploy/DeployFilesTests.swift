import Foundation
import Testing

@testable import RunnerCore

/// The deploy files at the top of the repository, tied to `jobs.yaml` and the CLI: a job added
/// to the table and forgotten here, or a command renamed, fails this suite.
@Suite("Deploy files against jobs.yaml and the CLI")
struct DeployFilesTests {
    static let root = TestDatabase.packageRoot

    static func jobTable() throws -> JobTable {
        try JobTableLoader(environment: [:]).load(path: root.appendingPathComponent("jobs.yaml").path)
    }

    @Test("crontab.example: one runner once line per job, at the job's own schedule when cron can say it")
    func crontab() async throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("crontab.example"), encoding: .utf8)
        var lines: [String: [String]] = [:]
        for line in text.split(separator: "\n").map(String.init) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            // Comments, blank lines and VAR=value lines are not entries.
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"),
                trimmed.range(of: #"^[A-Z_]+="#, options: .regularExpression) == nil
            else { continue }
            let fields = trimmed.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true).map(String.init)
            try #require(fields.count == 6, "not a crontab entry: \(line)")
            let command = fields[5]
            let match = try #require(
                command.firstMatch(of: /runner once ([a-z0-9-]+)/), "an entry that is not `runner once JOB`: \(line)")
            lines[String(match.1), default: []].append(fields[0..<5].joined(separator: " "))
        }
        let table = try Self.jobTable()
        #expect(Set(lines.keys) == Set(table.jobs.map(\.name)), "crontab jobs \(lines.keys.sorted())")
        for job in table.jobs {
            let entries = lines[job.name] ?? []
            #expect(entries.count == 1, "\(job.name): \(entries)")
            let fields = job.schedule.text.split(separator: " ")
            let cronCanSay = job.timeZoneName == "UTC" && fields.count == 5
            let expected = cronCanSay ? job.schedule.text : "* * * * *"
            #expect(entries.first == expected, "\(job.name) (\(job.schedule.text), \(job.timeZoneName)): \(entries)")
        }
        // The command it names exists, with the argument it passes.
        let help = try await RunnerProcess.run(["once", "--help"])
        #expect(help.status == 0 && help.stdout.contains("<job>"), "\(help.stdout)")
    }
}
