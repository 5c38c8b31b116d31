import Foundation
import JobTable
import Ledger
import Redaction
import RunnerSupport

/// One state change of a job, as every channel says it: built from the ledger's rows, its
/// error and output tail already redacted and cut, so no channel can leak a secret or a flood.
public struct Notification: Sendable, Equatable {
    public var job: String
    public var event: NotifyEvent
    /// The slot the event is about (for `missed`, the slot nobody ran).
    public var slot: Date
    public var runID: Int64?
    /// The run's status (`failed`, `succeeded`, `timed_out`, `running`), or `missed`.
    public var status: String
    public var attempt: Int?
    public var durationMs: Int64?
    public var error: String?
    /// The end of the run's output (stderr after stdout), at most ``tailLimit`` bytes.
    public var outputTail: String?
    /// Settled slots failed in a row, this one included (failed, timed_out).
    public var failureStreak: Int?
    /// `RUNNER_PUBLIC_URL`: where the status page is, for a link.
    public var statusPage: String?
    /// When it was noticed, on the database's clock.
    public var at: Date

    public static let tailLimit = 2048

    public init(
        job: String, event: NotifyEvent, slot: Date, runID: Int64? = nil, status: String, attempt: Int? = nil,
        durationMs: Int64? = nil, error: String? = nil, outputTail: String? = nil, failureStreak: Int? = nil,
        statusPage: String? = nil, at: Date
    ) {
        let redact = Redactor.process
        self.job = job
        self.event = event
        self.slot = slot
        self.runID = runID
        self.status = status
        self.attempt = attempt
        self.durationMs = durationMs
        self.error = error.map { Self.cut(redact($0), to: 4096) }
        // Redacted before it is cut, so no secret is left half-masked at the cut.
        self.outputTail = outputTail.map { Self.tail(redact($0), bytes: Self.tailLimit) }.flatMap {
            $0.isEmpty ? nil : $0
        }
        self.failureStreak = failureStreak
        self.statusPage = statusPage
        self.at = at
    }

    /// The same notification with `secrets` (the job's channel URLs) masked in its error and output.
    package func masking(_ secrets: [String]) -> Notification {
        var copy = self
        for secret in secrets where secret.count >= 8 {
            copy.error = copy.error?.replacingOccurrences(of: secret, with: Redactor.mask)
            copy.outputTail = copy.outputTail?.replacingOccurrences(of: secret, with: Redactor.mask)
        }
        return copy
    }

    /// A run's output as a notification carries it: stderr after stdout, from its outcome.
    package static func output(of outcome: JSONValue?) -> String? {
        let parts = ["stdout_tail", "stderr_tail"].compactMap { outcome?[$0]?.stringValue }
            .map { $0.trimmingCharacters(in: .newlines) }.filter { !$0.isEmpty }
        return parts.isEmpty ? nil : parts.joined(separator: "\n")
    }

    /// The last `bytes` bytes of `text`, cut at a character boundary.
    package static func tail(_ text: String, bytes: Int) -> String {
        let utf8 = Array(text.utf8)
        guard utf8.count > bytes else { return text }
        var start = utf8.count - bytes
        while start < utf8.count, utf8[start] & 0xC0 == 0x80 { start += 1 }
        return String(decoding: utf8[start...], as: UTF8.self)
    }

    package static func cut(_ text: String, to bytes: Int) -> String {
        guard text.utf8.count > bytes else { return text }
        var end = bytes
        let utf8 = Array(text.utf8)
        while end > 0, utf8[end] & 0xC0 == 0x80 { end -= 1 }
        return String(decoding: utf8[..<end], as: UTF8.self) + "…"
    }

    /// One line a person reads first: `stuck-tasks failed (slot 2026-12-06T10:30:00Z, 3 in a row)`.
    public var headline: String {
        let slotKey = Ledger.slotKey(for: slot)
        switch event {
        case .failed:
            let streak = failureStreak.map { $0 > 1 ? ", \($0) in a row" : "" } ?? ""
            return "\(job) \(status == "timed_out" ? "timed out" : "failed") (slot \(slotKey)\(streak))"
        case .recovered: return "\(job) recovered: slot \(slotKey) succeeded"
        case .missed: return "\(job) missed slot \(slotKey): no run started within its catchup"
        case .timedOut: return "\(job) timed out (slot \(slotKey))"
        case .runningLong:
            let minutes = durationMs.map { " for \(DurationParser.format(.milliseconds($0)))" } ?? ""
            return "\(job) is still running\(minutes) (slot \(slotKey))"
        }
    }

    /// The fields every channel carries, in order, as (name, value) for text renderings.
    package var facts: [(String, String)] {
        var facts: [(String, String)] = [("Job", job), ("Event", event.rawValue), ("Slot", Ledger.slotKey(for: slot))]
        facts.append(("Status", status))
        if let runID { facts.append(("Run", String(runID))) }
        if let attempt, attempt > 1 { facts.append(("Attempt", String(attempt))) }
        if let durationMs { facts.append(("Duration", DurationParser.format(.milliseconds(durationMs)))) }
        if let failureStreak, failureStreak > 0 { facts.append(("Failures in a row", String(failureStreak))) }
        return facts
    }

    // MARK: - As each channel sends it

    /// The webhook body (documented in the README): one JSON object.
    public var webhookBody: JSONValue {
        var fields: [String: JSONValue] = [
            "event": .string(event.rawValue), "job": .string(job), "slot": .string(Ledger.slotKey(for: slot)),
            "status": .string(status), "summary": .string(headline), "at": .string(Ledger.slotKey(for: at)),
            "runner": ["host": .string(ProcessInfo.processInfo.hostName), "version": .string(RunnerVersion.current)],
        ]
        fields["run_id"] = runID.map { .number(Double($0)) } ?? .null
        fields["attempt"] = attempt.map { .number(Double($0)) } ?? .null
        fields["duration_ms"] = durationMs.map { .number(Double($0)) } ?? .null
        fields["error"] = error.map(JSONValue.string) ?? .null
        fields["output_tail"] = outputTail.map(JSONValue.string) ?? .null
        fields["failure_streak"] = failureStreak.map { .number(Double($0)) } ?? .null
        fields["status_page"] = statusPage.map(JSONValue.string) ?? .null
        return .object(fields)
    }

    /// A Slack incoming webhook's message: `text` (the notification's fallback) and blocks.
    /// Every value is escaped for Slack's mrkdwn (`&`, `<`, `>`), so no value can make a link or
    /// a mention.
    public var slackBody: JSONValue {
        // Slack refuses a section's text over 3000 characters: each is cut after escaping.
        func escaped(_ text: String, limit: Int = 2900) -> String {
            let escaped = text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;")
            guard escaped.count > limit else { return escaped }
            // Never in the middle of an entity.
            var cut = String(escaped.prefix(limit))
            if let amp = cut.lastIndex(of: "&"), !cut[amp...].contains(";") { cut = String(cut[..<amp]) }
            return cut + "…"
        }
        var blocks: [JSONValue] = [
            ["type": "section", "text": ["type": "mrkdwn", "text": .string("*\(escaped(headline))*")]],
            [
                "type": "section",
                "fields": .array(
                    facts.map { name, value in ["type": "mrkdwn", "text": .string("*\(name)*\n\(escaped(value))")] }),
            ],
        ]
        // Untrusted text (an error, a command's output) goes in code blocks: no mrkdwn formatting,
        // no links. ``` inside it would end the block early, so it is broken up.
        func code(_ text: String, limit: Int) -> String {
            "```\n" + escaped(text, limit: limit).replacingOccurrences(of: "```", with: "`\u{200B}``") + "\n```"
        }
        if let error {
            blocks.append([
                "type": "section", "text": ["type": "mrkdwn", "text": .string("*Error*\n" + code(error, limit: 2800))],
            ])
        }
        if let outputTail {
            blocks.append(["type": "section", "text": ["type": "mrkdwn", "text": .string(code(outputTail, limit: 2800))]])
        }
        if let statusPage {
            blocks.append([
                "type": "context",
                "elements": [["type": "mrkdwn", "text": .string("<\(escaped(statusPage))|Status page>")]],
            ])
        }
        // Nothing in an alert is previewed: a link in a job's output is not fetched by Slack.
        return [
            "text": .string(escaped(headline)), "blocks": .array(blocks), "unfurl_links": false,
            "unfurl_media": false,
        ]
    }

    /// The email a person receives: subject and text (and the same as simple HTML).
    public func email(to recipients: [EmailAddress]) -> Email {
        var lines = [headline, ""] + facts.map { "\($0): \($1)" }
        if let error { lines += ["", "Error:", error] }
        if let outputTail { lines += ["", "Output (the end):", outputTail] }
        if let statusPage { lines += ["", "Status page: \(statusPage)"] }
        let text = lines.joined(separator: "\n") + "\n"
        var html = "<html><body><p><b>\(htmlEscape(headline))</b></p><table>"
        for (name, value) in facts {
            html += "<tr><th align=\"left\">\(htmlEscape(name))</th><td>\(htmlEscape(value))</td></tr>"
        }
        html += "</table>"
        if let error { html += "<p>Error:</p><pre>\(htmlEscape(error))</pre>" }
        if let outputTail { html += "<p>Output (the end):</p><pre>\(htmlEscape(outputTail))</pre>" }
        if let statusPage { html += "<p><a href=\"\(htmlEscape(statusPage))\">Status page</a></p>" }
        html += "</body></html>"
        return Email(to: recipients, subject: "[runner] \(headline)", text: text, html: html)
    }

    /// A Sentry event (Sentry's event payload), grouped per job by its fingerprint.
    package func sentryEvent(eventID: String) -> JSONValue {
        var context: [String: JSONValue] = [
            "job": .string(job), "slot": .string(Ledger.slotKey(for: slot)), "status": .string(status),
        ]
        if let runID { context["run_id"] = .number(Double(runID)) }
        if let attempt { context["attempt"] = .number(Double(attempt)) }
        if let durationMs { context["duration_ms"] = .number(Double(durationMs)) }
        if let error { context["error"] = .string(error) }
        if let outputTail { context["output_tail"] = .string(outputTail) }
        return [
            "event_id": .string(eventID), "timestamp": .number(at.timeIntervalSince1970.rounded()),
            "platform": "other", "level": "error", "logger": "runner",
            "server_name": .string(ProcessInfo.processInfo.hostName),
            "release": .string("runner@\(RunnerVersion.current)"),
            "message": ["formatted": .string(headline + (error.map { ": \($0)" } ?? ""))],
            "fingerprint": ["runner", .string(job)],
            "tags": ["job": .string(job), "status": .string(status)],
            "contexts": ["runner": .object(context)],
        ]
    }

    /// What the ledger keeps of it (the payload of its effect), and reads back for a retry.
    package var stored: JSONValue {
        var fields = webhookBody
        if case .object(var object) = fields {
            object["at_epoch"] = .number(at.timeIntervalSince1970)
            object["slot_epoch"] = .number(slot.timeIntervalSince1970)
            fields = .object(object)
        }
        return fields
    }

    /// A stored notification read back; nil when it is not one.
    package init?(stored value: JSONValue) {
        guard let job = value["job"]?.stringValue,
            let event = value["event"].flatMap({ $0.stringValue })
                .flatMap(NotifyEvent.init(rawValue:)),
            case .number(let slot)? = value["slot_epoch"], case .number(let at)? = value["at_epoch"],
            let status = value["status"]?.stringValue
        else { return nil }
        func number(_ key: String) -> Double? {
            if case .number(let value)? = value[key] { return value }
            return nil
        }
        self.job = job
        self.event = event
        self.slot = Date(timeIntervalSince1970: slot)
        self.at = Date(timeIntervalSince1970: at)
        self.status = status
        runID = number("run_id").map { Int64($0) }
        attempt = number("attempt").map { Int($0) }
        durationMs = number("duration_ms").map { Int64($0) }
        error = value["error"]?.stringValue
        outputTail = value["output_tail"]?.stringValue
        failureStreak = number("failure_streak").map { Int($0) }
        statusPage = value["status_page"]?.stringValue
    }
}
