import ArgumentParser
import Cron
import Foundation
import Engine
import RunnerSupport

struct Next: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "next",
        abstract: "Show the coming fire times of a job or of a cron expression.",
        discussion: """
            Prints one ISO-8601 instant per line with its UTC offset in the schedule's time zone, \
            each strictly after --after (default: now).

              runner next stuck-tasks
              runner next --schedule "30 2 * * *" --timezone Europe/Berlin --after 2026-03-28T12:00:00Z
            """
    )

    @Argument(help: "A job in the job table.")
    var job: String?

    @Option(help: "A cron expression instead of a job, e.g. \"0 16 * * FRI\" or \"@every 90s\".")
    var schedule: String?

    @Option(help: "The IANA time zone of --schedule (default UTC).")
    var timezone: String?

    @Option(help: "Start after this instant, ISO-8601 with Z or an offset (default: now).")
    var after: String?

    @Option(help: "How many fire times to print.")
    var count: Int = 5

    @OptionGroup var options: ConfigOptions

    func validate() throws {
        guard (job == nil) != (schedule == nil) else {
            throw ValidationError("Give either a job name or --schedule, not both or neither.")
        }
        if timezone != nil && job != nil {
            throw ValidationError("--timezone goes with --schedule; a job uses its own time zone.")
        }
        guard count >= 1 && count <= 10_000 else { throw ValidationError("--count must be from 1 to 10000.") }
    }

    func run() async throws {
        let start: Date
        if let after {
            guard let parsed = InstantFormat.parse(after) else {
                throw CommandError(
                    "--after \"\(after)\" is not an ISO-8601 instant", hint: "write it like 2026-03-29T01:00:00Z")
            }
            start = parsed
        } else {
            start = Date()
        }
        let resolved: Schedule
        if let job {
            resolved = try options.loadJob(named: job).schedule
        } else {
            let zoneName = timezone ?? "UTC"
            guard let zone = TimeZone(identifier: zoneName) else {
                throw CommandError(
                    "unknown time zone \"\(zoneName)\"",
                    hint: "use an IANA name such as Europe/London or America/New_York")
            }
            do {
                resolved = try Schedule(parsing: schedule!, timeZone: zone)
            } catch {
                throw CommandError("schedule \"\(schedule!)\": \(error.message)")
            }
        }
        let fires = resolved.upcoming(after: start, count: count)
        if fires.isEmpty {
            throw CommandError(
                "\"\(resolved.text)\" never fires after \(InstantFormat.string(start, in: resolved.timeZone))",
                code: .runFailed)
        }
        print(fires.map { InstantFormat.string($0, in: resolved.timeZone) }.joined(separator: "\n"))
    }
}
