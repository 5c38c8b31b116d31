import ArgumentParser
import Foundation
import Ledger
import Engine
import RunnerSupport

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
    @OptionGroup var namespaces: NamespaceOptions
    @OptionGroup var database: DatabaseOptions

    /// One row: a job of the table, or (for another namespace) as its table registered it.
    struct Entry {
        let namespace: String
        let name: String
        let schedule: String
        let zoneName: String
        let zone: TimeZone
        let next: Date?
    }

    func run() async throws {
        let table = try config.load()
        let connection = try await database.connect()
        let own = Ledger(connection: connection, namespace: table.namespace)
        try await own.markAbandoned()
        let now = try await own.databaseNow()
        let nextFires = table.jobs.map { $0.schedule.next(after: now) }
        try await own.registerJobs(
            zip(table.jobs, nextFires).map { ($0.name, $0.schedule.text, $0.timeZoneName, $1) })
        try await database.recordMissedSlots(of: table, ledger: own, now: now)
        let all = namespaces.allNamespaces
        var entries: [Entry]
        if !all, (namespaces.namespace ?? table.namespace) == table.namespace {
            entries = zip(table.jobs, nextFires).map { job, next in
                Entry(
                    namespace: table.namespace, name: job.name, schedule: job.schedule.text,
                    zoneName: job.timeZoneName, zone: job.timeZone, next: next)
            }
        } else {
            // Another namespace's table is not here: its jobs as that table registered them.
            let other = own.within(namespaces.namespace ?? table.namespace)
            entries = try await other.registrations(allNamespaces: all).map { job in
                Entry(
                    namespace: job.namespace, name: job.name, schedule: job.schedule, zoneName: job.timeZone,
                    zone: TimeZone(identifier: job.timeZone) ?? TimeZone(identifier: "UTC")!, next: job.nextSlot)
            }
        }
        var summaries: [String: [String: Ledger.JobSummary]] = [:]
        var pauses: [String: [String: Ledger.Pause]] = [:]
        var streaks: [String: [String: Int]] = [:]
        var notices: [String: [String: (at: Date, event: String)]] = [:]
        var latestMissed: [String: [String: Date]] = [:]
        for namespace in Set(entries.map(\.namespace)).sorted() {
            let ledger = own.within(namespace)
            let names = entries.filter { $0.namespace == namespace }.map(\.name)
            summaries[namespace] = try await ledger.summaries(jobs: names)
            pauses[namespace] = try await ledger.activePauses(jobs: names)
            streaks[namespace] = try await ledger.failureStreaks(jobs: names)
            notices[namespace] = try await ledger.lastNotifications(jobs: names)
            for record in try await ledger.missedSlots(job: nil, since: now.addingTimeInterval(-7 * 86_400)) {
                latestMissed[namespace, default: [:]][record.job] = max(
                    latestMissed[namespace]?[record.job] ?? record.slot, record.slot)
            }
        }
        if json {
            let items = entries.map { job -> JSONValue in
                let summary = summaries[job.namespace]?[job.name]
                let pause = pauses[job.namespace]?[job.name]
                let notice = notices[job.namespace]?[job.name]
                return [
                    "namespace": .string(job.namespace),
                    "job": .string(job.name), "schedule": .string(job.schedule),
                    "timezone": .string(job.zoneName),
                    "next_fire": job.next.map { .string(InstantFormat.string($0, in: job.zone)) } ?? .null,
                    "last_run_id": summary?.lastRunID.map { .number(Double($0)) } ?? .null,
                    "last_status": summary?.lastStatus.map { .string($0.rawValue) } ?? .null,
                    "last_started_at": summary?.lastStartedAt.map { .string(utc($0)) } ?? .null,
                    "last_success_at": summary?.lastSuccessAt.map { .string(utc($0)) } ?? .null,
                    "success_rate_7d": summary?.successRate7d.map(JSONValue.number) ?? .null,
                    "missed_7d": .number(Double(summary?.missed7d ?? 0)),
                    "last_skipped_at": summary?.lastSkippedAt.map { .string(utc($0)) } ?? .null,
                    "last_skip_reason": summary?.lastSkipReason.map(JSONValue.string) ?? .null,
                    "latest_missed": latestMissed[job.namespace]?[job.name].map { .string(utc($0)) } ?? .null,
                    "failure_streak": .number(Double(streaks[job.namespace]?[job.name] ?? 0)),
                    "paused": pause.map { pause -> JSONValue in
                        [
                            "since": .string(utc(pause.pausedAt)),
                            "until": pause.until.map { .string(utc($0)) } ?? .null,
                            "reason": pause.reason.map(JSONValue.string) ?? .null, "by": .string(pause.pausedBy),
                        ]
                    } ?? .null,
                    "last_notification": notice.map { notice -> JSONValue in
                        ["at": .string(utc(notice.at)), "event": .string(notice.event)]
                    } ?? .null,
                ]
            }
            print(JSONValue.array(items).text)
            return
        }
        let rows = entries.map { job -> [String] in
            let summary = summaries[job.namespace]?[job.name]
            let missed = summary?.missed7d ?? 0
            let latest = latestMissed[job.namespace]?[job.name].map(utc) ?? "-"
            let pause = pauses[job.namespace]?[job.name]
            let notice = notices[job.namespace]?[job.name]
            // Another namespace's rows come from the ledger, outside text: shown escaped.
            var row: [String] = all ? [displayEscaped(job.namespace)] : []
            row.append(displayEscaped(job.name))
            row.append(displayEscaped(job.schedule))
            row.append(displayEscaped(job.zoneName))
            row.append(job.next.map { InstantFormat.string($0, in: job.zone) } ?? "never")
            row.append(summary?.lastStartedAt.map(utc) ?? "-")
            row.append(summary?.lastStatus?.rawValue ?? "-")
            row.append(summary?.lastSuccessAt.map(utc) ?? "-")
            row.append(summary?.successRate7d.map { String(format: "%.0f%%", $0 * 100) } ?? "-")
            row.append(String(streaks[job.namespace]?[job.name] ?? 0))
            row.append(missed == 0 ? "0" : "\(missed) (latest \(latest))")
            row.append(pause.map { pause in pause.until.map { "until \(utc($0))" } ?? "yes" } ?? "-")
            row.append(notice.map { "\($0.event) \(utc($0.at))" } ?? "-")
            return row
        }
        print(
            alignedTable(
                header: (all ? ["NAMESPACE"] : []) + [
                    "JOB", "SCHEDULE", "ZONE", "NEXT", "LAST RUN", "STATUS", "LAST SUCCESS", "7D OK", "FAILING",
                    "MISSED 7D", "PAUSED", "LAST NOTICE",
                ],
                rows: rows))
    }
}
