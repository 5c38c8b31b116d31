import ArgumentParser
import Foundation
import RunnerCore

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show recorded runs, newest first.",
        discussion: "runner history --job stuck-tasks --status failed --since 7d --limit 50"
    )

    @Option(help: "Only this job.")
    var job: String?

    @Option(
        help: "Only runs with this status (running, succeeded, failed, timed_out, skipped, abandoned, interrupted).")
    var status: RunStatus?

    @Option(help: "Only runs started within this long, e.g. 24h or 7d.")
    var since: String?

    @Option(help: "At most this many runs.")
    var limit: Int = 20

    @Flag(help: "Print a JSON array of runs instead of a table.")
    var json = false

    @OptionGroup var database: DatabaseOptions

    func validate() throws {
        try validateLimit(limit)
        if let since {
            do {
                _ = try DurationParser.parse(since)
            } catch {
                throw ValidationError(
                    error.tooLong
                        ? "--since \"\(since)\" is longer than 100 years."
                        : "--since \"\(since)\" is not a duration such as 24h or 7d.")
            }
        }
    }

    func run() async throws {
        let connection = try await database.connect()
        let from = try since.map { Date().addingTimeInterval(-(try DurationParser.parse($0)).timeInterval) }
        let runs = try await Ledger(connection: connection).history(
            Ledger.HistoryFilter(job: job, status: status, since: from, limit: limit))
        if json {
            print(JSONValue.array(runs.map(Self.json)).text)
            return
        }
        if runs.isEmpty {
            print("no runs recorded\(job.map { " for \($0)" } ?? "")")
            return
        }
        let rows = runs.map { run -> [String] in
            [
                String(run.id), run.job, utc(run.slot), run.trigger.rawValue,
                run.status.rawValue + (run.dryRun ? " (dry)" : ""),
                utc(run.startedAt), humanDuration(milliseconds: run.durationMs), Self.summary(run),
            ]
        }
        print(
            alignedTable(
                header: ["RUN", "JOB", "SLOT", "TRIGGER", "STATUS", "STARTED", "DURATION", "SUMMARY"], rows: rows))
    }

    static func json(_ run: RunRecord) -> JSONValue {
        [
            "id": .number(Double(run.id)), "job": .string(run.job), "slot": .string(utc(run.slot)),
            "trigger": .string(run.trigger.rawValue), "attempt": .number(Double(run.attempt)),
            "status": .string(run.status.rawValue), "dry_run": .bool(run.dryRun), "claimed_by": .string(run.claimedBy),
            "started_at": .string(utc(run.startedAt)), "finished_at": run.finishedAt.map { .string(utc($0)) } ?? .null,
            "duration_ms": run.durationMs.map { .number(Double($0)) } ?? .null, "outcome": run.outcome ?? .null,
            "error": run.error.map(JSONValue.string) ?? .null,
        ]
    }

    /// The error's first line, or the outcome without bulky output tails; at most 80 characters.
    static func summary(_ run: RunRecord) -> String {
        var text: String
        if let error = run.error {
            text = String(error.split(separator: "\n").first ?? "")
        } else if case .object(var fields)? = run.outcome {
            fields["stdout_tail"] = nil
            fields["stderr_tail"] = nil
            text = fields.isEmpty ? "" : JSONValue.object(fields).text
        } else {
            text = ""
        }
        if text.count > 80 { text = String(text.prefix(77)) + "..." }
        return text
    }
}
