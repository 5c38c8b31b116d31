import Cron
import Foundation
import RunnerSupport

/// One validated entry of the job table, with `defaults:` already merged in.
public struct Job: Sendable {
    public enum Action: Sendable, Equatable {
        case agent(AgentName, AgentOptions)
        /// An argv run without a shell, with `${VAR}` expanded; `written` is the same argv as the
        /// job table has it (variables unexpanded), the only form that goes into history.
        case command([String], written: [String])
    }

    public enum Overlap: String, Sendable, CaseIterable {
        /// A new slot is recorded as skipped while the job still has a live run.
        case skip
        case allow
        /// A new slot stops the job's live run of an earlier slot (recorded `interrupted`,
        /// replaced) and runs.
        case replace
    }

    public struct Retries: Sendable, Equatable {
        public var max: Int
        public var backoff: Duration
        public var maxBackoff: Duration

        public static let standard = Retries(max: 3, backoff: .seconds(30), maxBackoff: .seconds(600))

        /// The wait before `attempt` (2 for the first retry): `backoff` doubled for each retry
        /// before it, at most `maxBackoff`, then a random point in its upper half, so replicas
        /// that failed together do not retry together.
        public func delay(
            beforeAttempt attempt: Int, random: (ClosedRange<Double>) -> Double = { Double.random(in: $0) }
        ) -> Duration {
            let doublings = Swift.max(0, Swift.min(attempt - 2, 40))
            let full = Swift.min(backoff.timeInterval * pow(2, Double(doublings)), maxBackoff.timeInterval)
            return .milliseconds(Int64((random(0.5...1) * full * 1000).rounded()))
        }
    }

    public let name: String
    public let action: Action
    public let schedule: Schedule
    public let timeout: Duration
    public let overlap: Overlap
    /// How late a slot may still be started.
    public let catchup: Duration
    public let retries: Retries
    /// Another database for the agent's own data; nil means the ledger's database.
    public let database: String?
    public let pingURL: String?
    /// What a command job's environment holds beyond the minimal one (`env:`).
    public var environment = CommandEnvironment()
    /// `effects_scope:`: the name an agent job's effects (emails, alerts, insights) are keyed
    /// under. Nil: the agent and its product database (``EffectScope``), so renaming a job
    /// sends nothing again; two jobs of one agent set different scopes to stay apart.
    public var effectsScope: String?
    /// Where the job is defined in its file.
    public let line: Int
    /// `notify:`: who hears of its failures, recoveries, misses, timeouts and long runs.
    public var notify: [NotifyChannel] = []
    /// `repeat_after:`: a job that keeps failing is reported again after this long.
    public var repeatAfter: Duration = .seconds(24 * 3600)
    /// `warn_after:`: a run still running after this long is reported (`running_long`).
    public var warnAfter: Duration?

    public var timeZone: TimeZone { schedule.timeZone }
    /// The zone as the job table names it (Foundation may report UTC as "GMT").
    public var timeZoneName: String { schedule.timeZoneName }

    public static let defaultTimeout: Duration = .seconds(600)
    public static let defaultCatchup: Duration = .seconds(3600)
}

/// A command's environment: a minimal one (PATH, HOME, LANG, TZ, `RUNNER_*`, `DATABASE_URL`)
/// plus what the job lists under `env:`, never the runner's provider secrets unless listed.
public struct CommandEnvironment: Sendable, Equatable {
    /// Names passed through from the runner's environment when set there.
    public var passThrough: [String] = []
    /// `NAME: value` pairs (`${VAR}` expanded).
    public var values: [String: String] = [:]

    package static let minimal: Set<String> = [
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TERM", "LANG", "TZ", "DATABASE_URL",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ]

    /// The environment a command starts with, from the runner's own.
    public func build(from environment: [String: String]) -> [String: String] {
        // An empty value is no setting (an empty SSL_CERT_FILE would make OpenSSL trust nothing).
        var result = environment.filter {
            !$0.value.isEmpty
                && (Self.minimal.contains($0.key) || $0.key.hasPrefix("RUNNER_") || $0.key.hasPrefix("LC_"))
        }
        for name in passThrough { if let value = environment[name] { result[name] = value } }
        result.merge(values) { $1 }
        if result["PATH"] == nil { result["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        return result
    }
}

/// How long the ledger keeps what it records (`retention:` under `defaults:`).
public struct Retention: Sendable, Equatable {
    public var runs: Duration = .seconds(90 * 86_400)
    public var metrics: Duration = .seconds(30 * 86_400)
    /// Effects that are done (sent, drafted, failed for good); pending ones are always kept.
    public var effects: Duration = .seconds(180 * 86_400)
    /// Each job's most recent failures are kept whatever their age.
    public static let keptFailures = 20

    public init() {}
}

/// The whole job table, jobs in file order.
public struct JobTable: Sendable {
    public let path: String
    public let jobs: [Job]
    public var retention = Retention()
    /// Whose jobs these are in a ledger several services share: every ledger row of a job
    /// belongs to its namespace, and a job is (namespace, name).
    public var namespace: String

    /// The namespace of a table that names none, and of every row written before namespaces.
    public static let defaultNamespace = "default"

    public init(path: String, jobs: [Job], retention: Retention = Retention(), namespace: String = defaultNamespace) {
        self.path = path
        self.jobs = jobs
        self.retention = retention
        self.namespace = namespace
    }

    /// 1 to 64 of `a-z0-9_-`: shown in logs and tables as it is, and never mistaken for a job
    /// name's part (`/` separates them where one text names both).
    public static func isValidNamespace(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 95 || $0 == 45 }
    }

    public func job(named name: String) -> Job? {
        jobs.first { $0.name == name }
    }
}
