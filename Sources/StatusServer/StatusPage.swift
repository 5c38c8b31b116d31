import Cron
import Foundation
import JobTable
import Ledger
import Outbox
import Engine
import RunnerSupport

/// `GET /`: every job with its schedule, zone, next fire (local and UTC), its last 30 runs as
/// coloured marks, its failure streak, its last error, and a pause. Plain HTML and CSS, no script, no
/// outside asset; every value from the table or the ledger is escaped.
enum StatusPage {
    struct Row {
        let job: Job
        let next: Date?
        let runs: [RunRecord]
        let running: Int
        /// `runner pause`: its slots are skipped until it ends.
        var pause: Ledger.Pause?
    }

    static func render(_ rows: [Row], generatedAt: Date, refreshSeconds: Int = 10) -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta http-equiv="refresh" content="\(refreshSeconds)">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>runner: \(rows.count) jobs</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2125; background: #fbfbfc; }
            h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
            p.meta { color: #5b636b; margin: 0 0 1rem; }
            table { border-collapse: collapse; width: 100%; background: #fff; }
            th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid #e3e6e9; vertical-align: top; }
            th { font-weight: 600; background: #f1f3f5; }
            td.job { font-weight: 600; }
            code { font-size: 13px; }
            .marks { display: flex; gap: 2px; flex-wrap: nowrap; }
            .mark { display: inline-block; width: 10px; height: 18px; border-radius: 2px; background: #ced4da; }
            .succeeded { background: #2f9e44; } .failed, .timed_out { background: #e03131; }
            .abandoned, .interrupted { background: #f08c00; } .skipped, .missed { background: #adb5bd; }
            .running { background: #1c7ed6; }
            .streak { color: #c92a2a; font-weight: 600; } .ok { color: #2b8a3e; }
            .error { color: #862e2e; max-width: 28rem; overflow-wrap: anywhere; }
            .utc { color: #5b636b; }
            .paused { color: #9c6500; font-weight: 600; }
            </style></head><body>
            <h1>runner</h1>
            <p class="meta">\(rows.count) jobs · generated \(escape(InstantFormat.string(generatedAt, in: utc))) · refreshes every \(refreshSeconds) s</p>
            <table><thead><tr><th>Job</th><th>Schedule</th><th>Time zone</th><th>Next fire</th><th>Last 30 runs (newest right)</th><th>Failure streak</th><th>Last error</th></tr></thead><tbody>

            """
        for row in rows {
            let name = escape(row.job.name)
            let next =
                row.next.map {
                    "\(escape(InstantFormat.string($0, in: row.job.timeZone)))<br><span class=\"utc\">\(escape(InstantFormat.string($0, in: utc)))</span>"
                } ?? "never"
            let marks = row.runs.reversed().map { run in
                let duration = run.durationMs.map { "\($0) ms" } ?? "running"
                let title =
                    "run \(run.id) \(run.status.rawValue), slot \(InstantFormat.string(run.slot, in: utc)), \(duration)"
                return "<span class=\"mark \(escape(run.status.rawValue))\" title=\"\(escape(title))\"></span>"
            }.joined()
            let streak = failureStreak(row.runs)
            let streakCell =
                streak == 0
                ? "<span class=\"ok\">0</span>"
                : "<span class=\"streak\">\(streak == row.runs.count && streak == 30 ? "30+" : String(streak))</span>"
            let lastError = row.runs.first { $0.status.isFailure }?.error.map { escape(String($0.prefix(300))) } ?? ""
            let paused =
                row.pause.map { pause in
                    let until = pause.until.map { " until \(InstantFormat.string($0, in: utc))" } ?? ""
                    let why = pause.reason.map { ": \($0)" } ?? ""
                    return " <span class=\"paused\">paused\(escape(until + why))</span>"
                } ?? ""
            html += """
                <tr data-job="\(name)"><td class="job">\(name)\(row.running > 0 ? " <small>(running)</small>" : "")\(paused)</td>\
                <td><code>\(escape(row.job.schedule.text))</code></td><td>\(escape(row.job.timeZoneName))</td>\
                <td>\(next)</td><td><div class="marks">\(marks)</div></td><td>\(streakCell)</td>\
                <td class="error">\(lastError)</td></tr>

                """
        }
        html += "</tbody></table></body></html>\n"
        return html
    }

    static let utc = TimeZone(identifier: "UTC")!

    /// Failures in a row, from the newest run back (skipped and missed slots neither break nor
    /// extend it; a running run is not yet an outcome).
    static func failureStreak(_ runs: [RunRecord]) -> Int {
        var streak = 0
        for run in runs where ![.skipped, .missed, .running].contains(run.status) {
            guard run.status.isFailure else { break }
            streak += 1
        }
        return streak
    }

    /// Every value from the table or the ledger goes through it (the email bodies' escaping).
    static func escape(_ text: String) -> String { htmlEscape(text) }
}
