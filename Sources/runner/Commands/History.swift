import ArgumentParser
import Foundation
import Ledger
import Engine
import RunnerSupport

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
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

    @OptionGroup var config: ConfigOptions
    @OptionGroup var namespaces: NamespaceOptions
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
        let namespace = try namespaces.resolved(config)
        let ledger = Ledger(connection: connection, namespace: namespace)
        let all = namespaces.allNamespaces
        if let job, !all {
            try await Self.checkKnown(job, ledger: ledger, config: config, tableCounts: namespaces.namespace == nil)
        }
        let from = try since.map { Date().addingTimeInterval(-(try DurationParser.parse($0)).timeInterval) }
        // One more than asked, to say whether the list was cut.
        var runs = try await ledger.history(
            Ledger.HistoryFilter(job: job, status: status, since: from, limit: limit + 1, allNamespaces: all))
        let cut = runs.count > limit
        if cut { runs.removeLast() }
        let more =
            "more runs than --limit \(limit): showing the newest \(limit); raise --limit or narrow with --job, --status or --since"
        if json {
            print(JSONValue.array(runs.map(Self.json)).text)
            if cut { printError("note: \(more)") }
            return
        }
        if runs.isEmpty {
            print("no runs recorded\(job.map { " for \($0)" } ?? "")\(all ? "" : " in namespace \(namespace)")")
            return
        }
        defer { if cut { print(more) } }
        let rows = runs.map { run -> [String] in
            (all ? [displayEscaped(run.namespace)] : [])
                + [
                    String(run.id), displayEscaped(run.job), utc(run.slot), run.trigger.rawValue,
                    run.status.rawValue + (run.dryRun ? " (dry)" : ""),
                    utc(run.startedAt), humanDuration(milliseconds: run.durationMs), Self.summary(run),
                ]
        }
        print(
            alignedTable(
                header: (all ? ["NAMESPACE"] : [])
                    + ["RUN", "JOB", "SLOT", "TRIGGER", "STATUS", "STARTED", "DURATION", "SUMMARY"], rows: rows))
    }

    /// A job neither in the job table nor in the ledger is a typo, not a job without runs.
    static func checkKnown(_ job: String, ledger: Ledger, config: ConfigOptions, tableCounts: Bool) async throws {
        var known = Set(try await ledger.knownJobs())
        // The table counts when there is one (named, or the default file) and it is the
        // namespace shown; history needs none.
        if tableCounts, config.hasTable {
            known.formUnion(try config.load().jobs.map(\.name))
        }
        guard !known.contains(job) else { return }
        throw CommandError(
            "no job \"\(job)\" in \(config.path) or the ledger\n"
                + "hint: jobs: \(known.isEmpty ? "none yet" : known.sorted().joined(separator: ", "))",
            code: .usage)
    }

    static func json(_ run: RunRecord) -> JSONValue {
        [
            "id": .number(Double(run.id)), "namespace": .string(run.namespace), "job": .string(run.job), "slot": .string(utc(run.slot)),
            "slot_key": .string(run.slotKey),
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
