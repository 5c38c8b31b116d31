import ArgumentParser
import Foundation
import Ledger
import Engine
import RunnerSupport

/// Who asked (paused or resumed a job, queued an email again), for the ledger: the login and host.
func operatorIdentity() -> String {
    "\(ProcessInfo.processInfo.environment["USER"] ?? String(getuid()))@\(ProcessInfo.processInfo.hostName)"
}

struct Pause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Pause a job: its slots are recorded skipped (reason paused), not run, and never counted missed.",
        discussion: """
            Kept in the database, so runner once on every host and every runner schedule replica \
            honour it. Without --until the job stays paused until runner resume. Pausing a paused \
            job sets its new end and reason.
            """
    )

    @Argument(help: "The job to pause.")
    var job: String

    @Option(
        help: "When the pause ends by itself: an ISO-8601 instant (2026-12-24T00:00:00Z) or a duration from now (8h).")
    var until: String?

    @Option(help: "Why, for runner status and the history.")
    var reason: String?

    @OptionGroup var config: ConfigOptions
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let (job, namespace) = try config.loadJobAndNamespace(named: job)
        let ledger = Ledger(connection: try await database.connect(), namespace: namespace)
        let now = try await ledger.databaseNow()
        var end: Date?
        if let until {
            if let instant = InstantFormat.parse(until) {
                end = instant
            } else if let duration = try? DurationParser.parse(until) {
                end = now.addingTimeInterval(duration.timeInterval)
            } else {
                throw CommandError(
                    "--until \"\(until)\" is neither an instant nor a duration",
                    hint: "write it like 2026-12-24T00:00:00Z or 8h")
            }
            guard let end, end > now else { throw CommandError("--until \(until) has already passed") }
        }
        let pause = try await ledger.pause(job: job.name, until: end, reason: reason, by: operatorIdentity())
        let until = pause.until.map { "until \(InstantFormat.string($0, in: job.timeZone))" } ?? "until runner resume"
        print("\(job.name) is paused \(until)\(pause.reason.map { " (\($0))" } ?? "")")
    }
}

struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Resume a paused job: its next slot runs as usual; slots passed while paused stay skipped."
    )

    @Argument(help: "The job to resume.")
    var job: String

    @OptionGroup var config: ConfigOptions
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let (job, namespace) = try config.loadJobAndNamespace(named: job)
        let ledger = Ledger(connection: try await database.connect(), namespace: namespace)
        if try await ledger.resume(job: job.name, by: operatorIdentity()) {
            print(
                "\(job.name) is resumed; next at \(job.schedule.next(after: try await ledger.databaseNow()).map { InstantFormat.string($0, in: job.timeZone) } ?? "never")"
            )
        } else {
            print("\(job.name) was not paused; nothing to do")
        }
    }
}

struct Missed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "missed",
        abstract: "List the slots that should have run and did not (past catchup, no run), newest first.",
        discussion: """
            Looks first, as every runner once does: a slot past its catchup with no run, counted from \
            the job's first run (a job new to the table has missed nothing), is recorded missed; a \
            slot of a paused job is recorded skipped instead. Exits 0 either way.
            """
    )

    @Option(help: "Only this job.")
    var job: String?

    @Option(help: "How far back (default 7d).")
    var since = "7d"

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    @OptionGroup var config: ConfigOptions
    @OptionGroup var namespaces: NamespaceOptions
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let table = try config.load()
        let namespace = namespaces.namespace ?? table.namespace
        let own = namespace == table.namespace && !namespaces.allNamespaces
        if let job, own { _ = try config.job(named: job, in: table) }
        guard let window = try? DurationParser.parse(since) else {
            throw CommandError("--since \"\(since)\" is not a duration", hint: "write it like 24h or 7d")
        }
        let connection = try await database.connect()
        let now = try await Ledger(connection: connection, namespace: table.namespace).databaseNow()
        // Only the table's own namespace is looked at first: only its table says what is owed.
        try await database.recordMissedSlots(
            of: table, ledger: Ledger(connection: connection, namespace: table.namespace), now: now)
        let ledger = Ledger(connection: connection, namespace: namespace)
        let missed = try await ledger.missedSlots(
            job: job, since: now.addingTimeInterval(-window.timeInterval), allNamespaces: namespaces.allNamespaces)
        if json {
            print(
                JSONValue.array(
                    missed.map { record in
                        [
                            "namespace": .string(record.namespace), "job": .string(record.job),
                            "slot": .string(utc(record.slot)),
                            "run_id": .number(Double(record.id)), "recorded_at": .string(utc(record.startedAt)),
                            "reason": record.error.map(JSONValue.string) ?? .null,
                        ]
                    }
                ).text)
            return
        }
        guard !missed.isEmpty else {
            print("no missed slots in the last \(since)\(job.map { " for \($0)" } ?? "")")
            return
        }
        let zones = Dictionary(table.jobs.map { ($0.name, $0.timeZone) }) { first, _ in first }
        let all = namespaces.allNamespaces
        print(
            alignedTable(
                header: (all ? ["NAMESPACE"] : []) + ["JOB", "SLOT", "LOCAL", "RECORDED", "WHY"],
                rows: missed.map { record in
                    (all ? [displayEscaped(record.namespace)] : [])
                        + [
                            displayEscaped(record.job), utc(record.slot),
                            (record.namespace == table.namespace ? zones[record.job] : nil).map {
                                InstantFormat.string(record.slot, in: $0)
                            } ?? "-",
                            utc(record.startedAt), record.error ?? "",
                        ]
                }))
    }
}
