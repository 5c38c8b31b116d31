import ArgumentParser
import Foundation
import RunnerCore

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "Show each job's schedule, next fire, last run, 7-day success rate, failure streak, missed slots and pause.",
        discussion: """
            Looks for missed slots first (past catchup with no run, since the job's first run) and \
            records them, as every runner once does.
            """
    )

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    @OptionGroup var config: ConfigOptions
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let table = try config.load()
        let connection = try await database.connect()
        let ledger = Ledger(connection: connection)
        try await ledger.markAbandoned()
        let now = try await ledger.databaseNow()
        let nextFires = table.jobs.map { $0.schedule.next(after: now) }
        try await ledger.registerJobs(
            zip(table.jobs, nextFires).map { ($0.name, $0.schedule.text, $0.timeZoneName, $1) })
        let names = table.jobs.map(\.name)
        try await database.recordMissedSlots(of: table, ledger: ledger, now: now)
        let summaries = try await ledger.summaries(jobs: names)
        let pauses = try await ledger.activePauses(jobs: names)
        let streaks = try await ledger.failureStreaks(jobs: names)
        let notices = try await ledger.lastNotifications(jobs: names)
        var latestMissed: [String: Date] = [:]
        for record in try await ledger.missedSlots(job: nil, since: now.addingTimeInterval(-7 * 86_400)) {
            latestMissed[record.job] = max(latestMissed[record.job] ?? record.slot, record.slot)
        }
        if json {
            let items = zip(table.jobs, nextFires).map { job, next -> JSONValue in
                let summary = summaries[job.name]
                return [
                    "job": .string(job.name), "schedule": .string(job.schedule.text),
                    "timezone": .string(job.timeZoneName),
                    "next_fire": next.map { .string(InstantFormat.string($0, in: job.timeZone)) } ?? .null,
                    "last_run_id": summary?.lastRunID.map { .number(Double($0)) } ?? .null,
                    "last_status": summary?.lastStatus.map { .string($0.rawValue) } ?? .null,
                    "last_started_at": summary?.lastStartedAt.map { .string(utc($0)) } ?? .null,
                    "last_success_at": summary?.lastSuccessAt.map { .string(utc($0)) } ?? .null,
                    "success_rate_7d": summary?.successRate7d.map(JSONValue.number) ?? .null,
                    "missed_7d": .number(Double(summary?.missed7d ?? 0)),
                    "last_skipped_at": summary?.lastSkippedAt.map { .string(utc($0)) } ?? .null,
                    "last_skip_reason": summary?.lastSkipReason.map(JSONValue.string) ?? .null,
                    "latest_missed": latestMissed[job.name].map { .string(utc($0)) } ?? .null,
                    "failure_streak": .number(Double(streaks[job.name] ?? 0)),
                    "paused": pauses[job.name].map { pause -> JSONValue in
                        [
                            "since": .string(utc(pause.pausedAt)),
                            "until": pause.until.map { .string(utc($0)) } ?? .null,
                            "reason": pause.reason.map(JSONValue.string) ?? .null, "by": .string(pause.pausedBy),
                        ]
                    } ?? .null,
                    "last_notification": notices[job.name].map { notice -> JSONValue in
                        ["at": .string(utc(notice.at)), "event": .string(notice.event)]
                    } ?? .null,
                ]
            }
            print(JSONValue.array(items).text)
            return
        }
        let rows = zip(table.jobs, nextFires).map { job, next -> [String] in
            let summary = summaries[job.name]
            return [
                job.name, job.schedule.text, job.timeZoneName,
                next.map { InstantFormat.string($0, in: job.timeZone) } ?? "never",
                summary?.lastStartedAt.map(utc) ?? "-", summary?.lastStatus?.rawValue ?? "-",
                summary?.lastSuccessAt.map(utc) ?? "-",
                summary?.successRate7d.map { String(format: "%.0f%%", $0 * 100) } ?? "-",
                String(streaks[job.name] ?? 0),
                (summary?.missed7d ?? 0) == 0
                    ? "0" : "\(summary?.missed7d ?? 0) (latest \(latestMissed[job.name].map(utc) ?? "-"))",
                pauses[job.name].map { pause in pause.until.map { "until \(utc($0))" } ?? "yes" } ?? "-",
                notices[job.name].map { "\($0.event) \(utc($0.at))" } ?? "-",
            ]
        }
        print(
            alignedTable(
                header: [
                    "JOB", "SCHEDULE", "ZONE", "NEXT", "LAST RUN", "STATUS", "LAST SUCCESS", "7D OK", "FAILING",
                    "MISSED 7D", "PAUSED", "LAST NOTICE",
                ],
                rows: rows))
    }
}
