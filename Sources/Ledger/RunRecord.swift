import Foundation
import PostgresClient
import RunnerSupport

public enum RunStatus: String, Sendable, CaseIterable, Codable {
    case running, succeeded, failed
    case timedOut = "timed_out"
    case skipped, abandoned, interrupted
    /// Found later than its catchup: recorded, never run.
    case missed

    /// Statuses that count as a failure for exit codes and success rates.
    public var isFailure: Bool { [.failed, .timedOut, .abandoned, .interrupted].contains(self) }
}

public enum RunTrigger: String, Sendable, CaseIterable, Codable {
    case schedule, once, manual, retry, catchup, backfill
}

/// What started a run's chain of attempts; a retry keeps its first attempt's origin.
public enum RunOrigin: String, Sendable, CaseIterable, Codable {
    /// A slot of the job's schedule, whoever claimed it (the scheduler, `runner once`, a
    /// catch-up, a backfill). Only these hold the job (overlap), are retried across processes,
    /// and count for notifications and streaks.
    case schedule
    /// `runner once --force`: a key of its own, retried only by the process that started it.
    case manual
    /// `runner once --dry-run`: effects disabled, never retried.
    case dryRun = "dry_run"
}

/// What decides whether an attempt gets a successor: its number, how it ended, whether its
/// failure was judged permanent, and when its successor is due.
public protocol RunAttempt: Sendable {
    var attempt: Int { get }
    var status: RunStatus { get }
    var isPermanentFailure: Bool { get }
    var retryAt: Date? { get }
}

extension RunAttempt {
    /// A failed, timed-out or abandoned attempt that `retries: {max: max}` allows a successor.
    public func allowsRetry(max: Int) -> Bool {
        [.failed, .timedOut, .abandoned].contains(status) && attempt <= max && !isPermanentFailure
    }
}

/// One row of `runner.runs`.
public struct RunRecord: RunAttempt, Equatable {
    public let id: Int64
    /// The namespace of the job's table.
    public let namespace: String
    public let job: String
    public let slot: Date
    public let slotKey: String
    public let trigger: RunTrigger
    public let origin: RunOrigin
    public let attempt: Int
    public let status: RunStatus
    public let dryRun: Bool
    public let claimedBy: String
    public let startedAt: Date
    public let heartbeatAt: Date
    public let finishedAt: Date?
    public let durationMs: Int64?
    public let outcome: JSONValue?
    public let error: String?
    /// When this failed attempt's successor is due; nil when none is (or it was settled).
    public let retryAt: Date?

    static let columns = """
        id, namespace, job, slot, slot_key, trigger, origin, attempt, status, dry_run, claimed_by, started_at,
        heartbeat_at, finished_at, duration_ms, outcome::text AS outcome, error, retry_at
        """

    /// ``columns`` without the output and with the error's first 300 characters.
    static let overviewColumns = """
        id, namespace, job, slot, slot_key, trigger, origin, attempt, status, dry_run, claimed_by, started_at,
        heartbeat_at, finished_at, duration_ms, NULL::text AS outcome, left(error, 300) AS error, retry_at
        """

    package init(row: PostgresRow) throws {
        id = try row.int64("id") ?? 0
        namespace = try row.string("namespace", default: "")
        job = try row.string("job", default: "")
        slot = try row.date("slot") ?? Date(timeIntervalSince1970: 0)
        slotKey = try row.string("slot_key", default: "")
        let id = self.id
        trigger = try row.known("trigger", as: RunTrigger.self, row: "run \(id)")
        origin = try row.known("origin", as: RunOrigin.self, row: "run \(id)")
        attempt = try row.int("attempt") ?? 1
        status = try row.known("status", as: RunStatus.self, row: "run \(id)")
        dryRun = try row.bool("dry_run") ?? false
        claimedBy = try row.string("claimed_by", default: "")
        startedAt = try row.date("started_at") ?? Date(timeIntervalSince1970: 0)
        heartbeatAt = try row.date("heartbeat_at") ?? startedAt
        finishedAt = try row.date("finished_at")
        durationMs = try row.int64("duration_ms")
        outcome = try row.string("outcome").flatMap(JSONValue.parse)
        error = try row.string("error")
        retryAt = try row.date("retry_at")
    }

    /// A failure its run judged permanent (the work said retrying cannot help): never retried.
    public var isPermanentFailure: Bool {
        if case .object(let fields) = outcome, fields["permanent"] == .bool(true) { return true }
        return false
    }
}

/// One counter of a run, for `runner.metrics`.
public struct Metric: Sendable, Equatable {
    public let name: String
    public let value: Double
    public let unit: String

    public init(_ name: String, _ value: Double, unit: String = "") {
        self.name = name
        self.value = value
        self.unit = unit
    }
}
