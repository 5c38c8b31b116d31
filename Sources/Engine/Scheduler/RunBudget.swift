import RunnerSupport

/// A run's time, in one place. Every bound on how long a run may take derives from the job's
/// `timeout` and the runner's heartbeat interval here, and is passed down, never recomputed:
///
/// - the work is stopped at ``deadline`` (the job's timeout after it started);
/// - stopped work has ``reportGrace`` to say what it did, so no stop is longer than that;
/// - a stopped command's process group gets SIGTERM, then SIGKILL ``killGrace`` later;
/// - a product database statement whose cancel is lost still ends ``statementBackstop`` past
///   the deadline (its session's `statement_timeout`), so the deadline's clean `timed_out`
///   comes first;
/// - the run steps aside once its lease could not be renewed for ``fenceAfter``: the lease less
///   a heartbeat and the report grace, well before another process may take the slot. A
///   command's supervisor uses the same limit for a runner it sees frozen.
public struct RunBudget: Sendable, Equatable {
    public let timeout: Duration
    public let started: ContinuousClock.Instant
    public let fenceAfter: Duration

    public static let reportGrace: Duration = .seconds(5)
    public static let killGrace: Duration = .seconds(2)
    public static let statementBackstop: Duration = .seconds(2)

    public init(timeout: Duration, started: ContinuousClock.Instant = .now, heartbeatInterval: Duration) {
        self.timeout = timeout
        self.started = started
        fenceAfter = Self.fence(heartbeatInterval: heartbeatInterval)
    }

    /// When the work is stopped and the run recorded `timed_out`.
    public var deadline: ContinuousClock.Instant { started + timeout }

    /// How long a run may go without a heartbeat before another process counts it abandoned.
    public static func lease(heartbeatInterval: Duration) -> Duration { max(.seconds(30), heartbeatInterval * 6) }

    /// How long a run may fail to renew its lease before it stops itself.
    public static func fence(heartbeatInterval: Duration) -> Duration {
        max(heartbeatInterval, lease(heartbeatInterval: heartbeatInterval) - heartbeatInterval - reportGrace)
    }

    /// `statement_timeout` in milliseconds for a session opened at `now` to run until `deadline`:
    /// what is left plus the backstop, at least a second, at most int4's 24.8 days.
    public static func statementTimeoutMs(
        until deadline: ContinuousClock.Instant, now: ContinuousClock.Instant = .now
    ) -> Int64 {
        let left = Int64(((deadline - now) + statementBackstop).milliseconds)
        return min(max(left, 1000), Int64(Int32.max))
    }
}
