import Foundation
@testable import JobTable
import StandardAgents
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import ZOARK
import TestSupport

@Suite("Job table")
struct JobTableTests {
    static func load(_ text: String, environment: [String: String] = [:]) throws -> JobTable {
        try JobTableLoader(environment: environment, agents: .standard).load(text: text, path: "jobs.yaml")
    }

    static func diagnostics(_ text: String, environment: [String: String] = [:]) -> [ConfigDiagnostic] {
        do {
            _ = try load(text, environment: environment)
            return []
        } catch {
            return (error as? JobTableError)?.diagnostics ?? []
        }
    }

    @Test("the repository's jobs.yaml is valid and has the four agent jobs")
    func repositoryJobTable() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../jobs.yaml"
        )
        .standardized.path
        let table = try JobTableLoader(environment: [:], agents: .standard).load(path: path)
        #expect(table.jobs.map(\.name) == ["stuck-tasks", "approval-nudges", "timesheet-reminders", "deal-insights"])
        let reminders = try #require(table.job(named: "timesheet-reminders"))
        #expect(reminders.timeZone.identifier == "Europe/London")
        #expect(reminders.action == .agent(TimesheetDrafter.name, AgentOptions()))
        let stuck = try #require(table.job(named: "stuck-tasks"))
        guard case .agent(TaskMonitor.name, let options) = stuck.action else {
            Issue.record("stuck-tasks is not a task-monitor job")
            return
        }
        // The table's values over the agent's declared defaults.
        let typed = TaskMonitor.Options(options)
        #expect(typed.stuckAfter == .seconds(48 * 3600))
        #expect(typed.alertTo.isEmpty)
        #expect(typed.realertAfter == nil)
        #expect(table.job(named: "deal-insights")?.database == nil)
    }

    @Test("defaults are merged into every job, and a job's own keys win")
    func defaultsMerge() throws {
        let table = try Self.load(
            """
            defaults:
              timezone: Europe/Berlin
              timeout: 2m
              overlap: allow
              catchup: 15m
              retries: {max: 5, backoff: 10s}
            jobs:
              a:
                command: ["true"]
                schedule: "@hourly"
              b:
                command: ["/bin/echo", "hello world"]
                schedule: "0 16 * * FRI"
                timezone: America/New_York
                timeout: 1h30m
                retries: {max_backoff: 1h}
                ping_url: https://hc.example/ping/abc
            """)
        let a = try #require(table.job(named: "a"))
        #expect(a.timeZone.identifier == "Europe/Berlin")
        #expect(a.timeout == .seconds(120))
        #expect(a.overlap == .allow)
        #expect(a.catchup == .seconds(900))
        #expect(a.retries == Job.Retries(max: 5, backoff: .seconds(10), maxBackoff: .seconds(600)))
        let b = try #require(table.job(named: "b"))
        #expect(b.action == .command(["/bin/echo", "hello world"], written: ["/bin/echo", "hello world"]))
        #expect(b.timeZone.identifier == "America/New_York")
        #expect(b.timeout == .seconds(5400))
        #expect(b.retries == Job.Retries(max: 5, backoff: .seconds(10), maxBackoff: .seconds(3600)))
        #expect(b.pingURL == "https://hc.example/ping/abc")
    }

    @Test("notify: channels from defaults or the job (the job's own win), events default to four, empty URLs left out")
    func notifyChannels() throws {
        let table = try Self.load(
            """
            defaults:
              notify: [{slack: "${SLACK_WEBHOOK_URL}"}, {webhook: "${HOOK_URL:-}"}]
              repeat_after: 6h
            jobs:
              inherits: {command: [x], schedule: "@daily"}
              own:
                command: [x]
                schedule: "@daily"
                warn_after: 20m
                notify:
                  - {webhook: "https://hooks.example.com/runner", events: [failed, running_long]}
                  - {email: "ops@example.com, oncall@example.com"}
            """, environment: ["SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x", "WEBHOOK_SECRET": "s"])
        let inherits = try #require(table.job(named: "inherits"))
        #expect(inherits.notify == [NotifyChannel(.slack("https://hooks.slack.com/services/T/B/x"))])
        #expect(inherits.notify.first?.events == [.failed, .recovered, .missed, .timedOut])
        #expect(inherits.repeatAfter == .seconds(6 * 3600) && inherits.warnAfter == nil)
        let own = try #require(table.job(named: "own"))
        #expect(own.notify.count == 2 && own.warnAfter == .seconds(1200))
        #expect(
            own.notify.first
                == NotifyChannel(.webhook("https://hooks.example.com/runner"), events: [.failed, .runningLong]))
        guard case .email(let addresses)? = own.notify.last?.target else {
            Issue.record("\(own.notify)")
            return
        }
        #expect(addresses.map(\.address) == ["ops@example.com", "oncall@example.com"])
        // A channel's label names its kind, never its URL (a webhook URL is itself a secret).
        #expect(own.notify.allSatisfy { !$0.label.contains("example") })
    }

    @Test("built-in defaults apply when the file sets none")
    func builtInDefaults() throws {
        let table = try Self.load("jobs:\n  a:\n    agent: approval-nudger\n    schedule: \"0 * * * *\"\n")
        let job = try #require(table.jobs.first)
        #expect(job.timeZone == TimeZone(identifier: "UTC")!)
        #expect(job.timeout == .seconds(600))
        #expect(job.overlap == .skip)
        #expect(job.catchup == .seconds(3600))
        #expect(job.retries == .standard)
        #expect(job.line == 2)
    }

    @Test("${VAR} and ${VAR:-default} come from the environment")
    func environmentExpansion() throws {
        let text = """
            jobs:
              a:
                agent: task-monitor
                schedule: "${SCHEDULE}"
                database: "${VECTOR_URL:-}"
                with: {alert_to: "${ALERT:-ops@example.com}", stuck_after: "${STUCK:-48h}"}
            """
        let table = try Self.load(text, environment: ["SCHEDULE": "*/5 * * * *", "STUCK": "3d"])
        let job = try #require(table.jobs.first)
        #expect(job.schedule.text == "*/5 * * * *")
        #expect(job.database == nil)
        #expect(
            job.action
                == .agent(
                    TaskMonitor.name,
                    AgentOptions([
                        "alert_to": .addresses(["ops@example.com"]), "stuck_after": .duration(.seconds(259_200)),
                    ]))
        )
        let withURL = try Self.load(
            text, environment: ["SCHEDULE": "@daily", "VECTOR_URL": "postgres://db/v", "ALERT": "a@b.c"])
        #expect(withURL.jobs.first?.database == "postgres://db/v")
        let expander = EnvironmentExpander(environment: ["A": "x", "EMPTY": ""])
        #expect(try expander.expand("$${A}-${A}-${EMPTY:-d}-${MISSING:-}") == "${A}-x-d-")
    }

    /// Each broken file and the one diagnostic it must produce: line, column, and words of the message.
    static let errors: [(name: String, yaml: String, line: Int, column: Int, message: String)] = [
        (
            "alert_to smuggling a second recipient",
            "jobs:\n  a:\n    agent: task-monitor\n    schedule: \"@daily\"\n    with: {alert_to: \"Ops <ops@x>, evil@example.com\"}\n",
            5, 22, "job \"a\", key \"with.alert_to\": invalid recipient \"Ops <ops@x>\""
        ),
        (
            "escalate_to with a line break",
            "jobs:\n  a:\n    agent: approval-nudger\n    schedule: \"@daily\"\n    with: {escalate_to: \"cfo@example.com\\r\\nBcc: x@example.com\"}\n",
            5, 25,
            "job \"a\", key \"with.escalate_to\": invalid recipient \"cfo@example.com\\r\\nBcc: x@example.com\": contains a control character"
        ),
        (
            "zero request timeout",
            "jobs:\n  a:\n    agent: insight-generator\n    schedule: \"@daily\"\n    with: {request_timeout: 0ms}\n",
            5, 29, "job \"a\", key \"with.request_timeout\": must be greater than zero, got \"0ms\""
        ),
        (
            "unknown top-level key", "jobz: 1\njobs:\n  a: {command: [x], schedule: \"@daily\"}\n", 1, 1,
            "unknown key \"jobz\" in the top level (expected one of namespace, defaults, jobs)"
        ),
        (
            "unknown defaults key", "defaults:\n  timezon: UTC\njobs:\n  a: {command: [x], schedule: \"@daily\"}\n", 2,
            3,
            "unknown key \"timezon\" in defaults"
        ),
        (
            "unknown job key", "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    schedul: \"@daily\"\n", 5,
            5,
            "unknown key \"schedul\" in job \"a\""
        ),
        (
            "notify not a list", "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    notify: {slack: x}\n", 5,
            13, "job \"a\", key \"notify\": expected a list of channels"
        ),
        (
            "notify unknown event",
            "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    notify: [{slack: \"https://h/x\", events: [faild]}]\n",
            5, 46, "unknown event \"faild\" (expected one of failed, recovered, missed, timed_out, running_long)"
        ),
        (
            "notify two targets",
            "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    notify: [{slack: \"https://h/x\", email: \"a@b.co\"}]\n",
            5, 37, "a channel names one of slack, webhook or email; make another for email"
        ),
        (
            "notify bad url",
            "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    notify: [{slack: \"hooks.slack.com\"}]\n",
            5, 22, "notify\", slack: expected an http:// or https:// URL"
        ),
        (
            "notify bad address",
            "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    notify: [{email: \"ops, x\"}]\n",
            5, 22, "notify\", email:"
        ),
        (
            "bad warn_after", "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    warn_after: soon\n", 5, 17,
            "\"soon\" is not a duration"
        ),
        (
            "unknown retries key",
            "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    retries: {maximum: 2}\n", 5,
            15, "unknown key \"maximum\" in job \"a\", retries:"
        ),
        (
            "unknown with key",
            "jobs:\n  a:\n    agent: approval-nudger\n    schedule: \"@daily\"\n    with:\n      cooldwn: 1h\n",
            6, 7,
            "unknown key \"cooldwn\" in job \"a\", with: (agent approval-nudger) (expected one of cooldown, escalate_to)"
        ),
        (
            "unknown agent", "jobs:\n  a:\n    agent: task-monitr\n    schedule: \"@daily\"\n", 3, 12,
            "unknown agent \"task-monitr\" (expected one of task-monitor, approval-nudger, timesheet-drafter, insight-generator)"
        ),
        (
            "agent and command", "jobs:\n  a:\n    agent: task-monitor\n    command: [x]\n    schedule: \"@daily\"\n",
            4, 5,
            "has both agent: and command:"
        ),
        ("neither agent nor command", "jobs:\n  a:\n    schedule: \"@daily\"\n", 2, 3, "needs either agent:"),
        (
            "command as a string", "jobs:\n  a:\n    command: psql -c vacuum\n    schedule: \"@daily\"\n", 3, 14,
            "expected a list of arguments"
        ),
        ("empty command", "jobs:\n  a:\n    command: []\n    schedule: \"@daily\"\n", 3, 14, "the list is empty"),
        ("missing schedule", "jobs:\n  a:\n    command: [x]\n", 2, 3, "needs schedule:"),
        (
            "minute out of range", "jobs:\n  a:\n    command: [x]\n    schedule: \"61 * * * *\"\n", 4, 15,
            "minute field \"61\": 61 is out of range 0-59"
        ),
        (
            "hour out of range", "jobs:\n  a:\n    command: [x]\n    schedule: \"0 25 * * *\"\n", 4, 15,
            "hour field \"25\""
        ),
        (
            "day out of range", "jobs:\n  a:\n    command: [x]\n    schedule: \"0 0 0 * *\"\n", 4, 15,
            "day-of-month field \"0\""
        ),
        (
            "month out of range", "jobs:\n  a:\n    command: [x]\n    schedule: \"0 0 * 13 *\"\n", 4, 15,
            "month field \"13\""
        ),
        (
            "weekday out of range", "jobs:\n  a:\n    command: [x]\n    schedule: \"0 0 * * 9\"\n", 4, 15,
            "day-of-week field \"9\""
        ),
        (
            "bad step", "jobs:\n  a:\n    command: [x]\n    schedule: \"*/0 * * * *\"\n", 4, 15,
            "step must be a whole number of at least 1"
        ),
        (
            "bad name", "jobs:\n  a:\n    command: [x]\n    schedule: \"0 0 * * FUN\"\n", 4, 15,
            "\"FUN\" is not a number or a name"
        ),
        ("wrong field count", "jobs:\n  a:\n    command: [x]\n    schedule: \"0 0 * *\"\n", 4, 15, "expected 5 fields"),
        ("impossible Feb 30", "jobs:\n  a:\n    command: [x]\n    schedule: \"0 0 30 2 *\"\n", 4, 15, "never fires"),
        (
            "impossible Apr 31", "jobs:\n  a:\n    command: [x]\n    schedule: \"0 0 31 4 *\"\n", 4, 15,
            "day-of-month 31 does not exist in Apr"
        ),
        (
            "unquoted star", "jobs:\n  a:\n    command: [x]\n    schedule: */5 * * * *\n", 4, 15,
            "schedule value */5 * * * * starts with \"*\", which YAML reads as an alias: quote it, as in schedule: \"*/5 * * * *\""
        ),
        (
            "unquoted @daily", "jobs:\n  a:\n    command: [x]\n    schedule: @daily\n", 4, 15,
            "schedule value @daily starts with \"@\", which YAML reserves: quote it, as in schedule: \"@daily\""
        ),
        (
            "unquoted @every with a comment", "jobs:\n  a:\n    command: [x]\n    schedule: @every 90s  # often\n", 4,
            15,
            "schedule value @every 90s starts with \"@\", which YAML reserves: quote it, as in schedule: \"@every 90s\""
        ),
        (
            "bad duration", "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    timeout: 10 minutes\n", 5, 14,
            "\"10 minutes\" is not a duration"
        ),
        (
            "bad with duration",
            "jobs:\n  a:\n    agent: task-monitor\n    schedule: \"@daily\"\n    with: {stuck_after: two days}\n",
            5, 25, "job \"a\", key \"with.stuck_after\": \"two days\" is not a duration"
        ),
        (
            "zero timeout", "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    timeout: 0s\n", 5, 14,
            "key \"timeout\": must be greater than zero"
        ),
        (
            "negative timeout", "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    timeout: -5m\n", 5, 14,
            "\"-5m\" is not a duration"
        ),
        (
            "catchup under a minute", "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    catchup: 30s\n", 5,
            14,
            "must be at least 1m"
        ),
        (
            "unknown time zone",
            "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    timezone: Europe/Londn\n", 5, 15,
            "unknown time zone \"Europe/Londn\""
        ),
        (
            "unknown default time zone",
            "defaults:\n  timezone: Mars/Olympus\njobs:\n  a: {command: [x], schedule: \"@daily\"}\n",
            2, 13, "defaults, key \"timezone\": unknown time zone \"Mars/Olympus\""
        ),
        (
            "bad overlap", "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    overlap: queue\n", 5, 14,
            "expected skip, allow or replace, got \"queue\""
        ),
        (
            "duplicate job",
            "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n  a:\n    command: [y]\n    schedule: \"@daily\"\n",
            5, 3, "duplicate job name \"a\" (first defined at line 2)"
        ),
        (
            "duplicate key in a job",
            "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    schedule: \"@hourly\"\n", 5, 5,
            "duplicate key \"schedule\" in job \"a\" (first at line 4)"
        ),
        (
            "unset variable",
            "jobs:\n  a:\n    agent: task-monitor\n    schedule: \"@daily\"\n    with:\n      alert_to: ${ALERT_EMAIL}\n",
            6, 17, "job \"a\", key \"with.alert_to\": environment variable ALERT_EMAIL is not set"
        ),
        (
            "unclosed variable", "jobs:\n  a:\n    command: [\"echo\", \"${HOME\"]\n    schedule: \"@daily\"\n", 3, 23,
            "\"${\" without a closing \"}\""
        ),
        (
            "with on a command job",
            "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    with: {cooldown: 1h}\n", 5, 5,
            "with: holds agent options, and this is a command job"
        ),
        (
            "bad job name", "jobs:\n  \"my job!\":\n    command: [x]\n    schedule: \"@daily\"\n", 2, 3,
            "job name \"my job!\" must start"
        ),
        ("no jobs", "defaults: {timeout: 1m}\n", 1, 1, "missing \"jobs:\""),
        ("empty jobs", "jobs: {}\n", 1, 7, "at least one job"),
        ("not a mapping", "- a\n- b\n", 1, 1, "the file must be a mapping"),
        ("YAML syntax", "jobs:\n  a: [unclosed\n", 3, 1, "YAML syntax error"),
        (
            "bad retries max", "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    retries: {max: lots}\n", 5,
            20,
            "expected a whole number from 0 to 100"
        ),
        (
            "max_backoff below backoff",
            "defaults:\n  retries: {backoff: 5m, max_backoff: 1m}\njobs:\n  a: {command: [x], schedule: \"@daily\"}\n",
            2, 12, "max_backoff 1m is shorter than backoff 5m"
        ),
        (
            "bad max_concurrency",
            "jobs:\n  a:\n    agent: insight-generator\n    schedule: \"@daily\"\n    with: {max_concurrency: 0}\n",
            5, 29, "expected a whole number of at least 1"
        ),
        (
            "bad write_concurrency",
            "jobs:\n  a:\n    agent: insight-generator\n    schedule: \"@daily\"\n    with: {page_size: 500, write_concurrency: -1}\n",
            5, 47, "expected a whole number of at least 1"
        ),
        (
            "bad ping_url", "jobs:\n  a:\n    command: [x]\n    schedule: \"@daily\"\n    ping_url: hc.example/ping\n",
            5, 15,
            "expected an http:// or https:// URL"
        ),
        (
            "mapping where a value belongs", "jobs:\n  a:\n    command: [x]\n    schedule: {cron: daily}\n", 4, 15,
            "expected a single value, found a mapping"
        ),
    ]

    @Test("retry waits double from backoff up to max_backoff, each in its upper half")
    func retryDelays() {
        let retries = Job.Retries(max: 10, backoff: .seconds(30), maxBackoff: .seconds(600))
        let lowest = { (attempt: Int) in retries.delay(beforeAttempt: attempt) { $0.lowerBound } }
        let highest = { (attempt: Int) in retries.delay(beforeAttempt: attempt) { $0.upperBound } }
        #expect((2...7).map(highest) == [30, 60, 120, 240, 480, 600].map { Duration.seconds($0) })
        #expect((2...7).map(lowest) == [15, 30, 60, 120, 240, 300].map { Duration.seconds($0) })
        #expect(highest(100) == .seconds(600))
        for attempt in 2...12 {
            let delay = retries.delay(beforeAttempt: attempt)
            #expect(delay >= lowest(attempt) && delay <= highest(attempt))
        }
    }

    @Test("each invalid table is rejected with its line, column and reason", arguments: errors)
    func rejects(testCase: (name: String, yaml: String, line: Int, column: Int, message: String)) {
        let found = Self.diagnostics(testCase.yaml)
        #expect(found.count == 1, "\(testCase.name): \(found)")
        let first = found.first
        #expect(first?.line == testCase.line, "\(testCase.name): \(found)")
        #expect(first?.column == testCase.column, "\(testCase.name): \(found)")
        #expect(first?.message.contains(testCase.message) == true, "\(testCase.name): \(found)")
    }

    @Test("every error in one file is reported, in file order")
    func reportsAllErrors() {
        let found = Self.diagnostics(
            """
            defaults:
              color: blue
            jobs:
              a:
                agent: task-monitr
                schedule: */5 * * * *
              b:
                command: [x]
                schedule: "0 0 30 2 *"
                timeout: 0s
              a:
                command: [y]
                schedule: "@daily"
              c:
                agent: approval-nudger
                schedule: "0 * * * *"
                with: {cooldown: soon, alert: x}
            """)
        #expect(
            found.map { "\($0.line):\($0.column)" } == [
                "2:3", "5:12", "6:15", "9:15", "10:14", "11:3", "17:22", "17:28",
            ])
    }

    @Test("the error text reads PATH:LINE:COL: message")
    func errorDescription() {
        let error = JobTableError(
            path: "conf/jobs.yaml", diagnostics: [ConfigDiagnostic(line: 4, column: 15, message: "bad")])
        #expect(error.description == "conf/jobs.yaml:4:15: bad")
    }

    @Test(
        "durations read and print in the same forms",
        arguments: [
            ("90s", 90_000), ("30m", 1_800_000), ("48h", 172_800_000), ("7d", 604_800_000), ("1h30m", 5_400_000),
            ("500ms", 500), ("1d2h3m4s", 93_784_000),
        ])
    func durations(text: String, milliseconds: Int64) throws {
        let duration = try DurationParser.parse(text)
        #expect(duration == .milliseconds(milliseconds))
        #expect(try DurationParser.parse(DurationParser.format(duration)) == duration)
    }

    @Test(
        "malformed durations are rejected",
        arguments: ["", "10", "m", "1.5h", "10 m", "1y", "-1s", "99999999999999999999d"])
    func badDurations(text: String) {
        #expect(throws: DurationParser.Failure.self) { try DurationParser.parse(text) }
    }

    @Test("a job table that is not UTF-8 is refused at the line and column of its first bad byte, with what to do")
    func notUTF8() throws {
        let directory = try TemporaryDirectory()
        let file = directory.url.appendingPathComponent("jobs.yaml")
        var bytes = Data("jobs:\n  a: {command: [x], schedule: \"@daily\"}\n# caf".utf8)
        bytes.append(contentsOf: [0xE9, 0x0A])  // Latin-1 é
        try bytes.write(to: file)
        do {
            _ = try JobTableLoader(environment: [:], agents: .standard).load(path: file.path)
            Issue.record("a Latin-1 file was read")
        } catch {
            #expect(error.diagnostics.first?.line == 3 && error.diagnostics.first?.column == 6, "\(error)")
            #expect(error.description.contains("not UTF-8"), "\(error)")
            #expect(error.hint == "save the job table as UTF-8")
        }
    }
}
