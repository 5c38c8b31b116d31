import Foundation
import JobTable
import Ledger
import RunnerSupport

/// How one run ended, before it is written to the ledger.
public struct RunResult: Sendable, Equatable {
    public var status: RunStatus
    public var outcome: JSONValue?
    public var error: String?
    public var metrics: [Metric]
    /// The failure will recur however often it is retried (a missing table, a refused login,
    /// a missing database, a misconfigured mailer): the run is not retried, and says what to do.
    public var permanent = false

    public init(status: RunStatus, outcome: JSONValue? = nil, error: String? = nil, metrics: [Metric] = []) {
        self.status = status
        self.outcome = outcome
        self.error = error
        self.metrics = metrics
    }

    public static func failed(_ error: String) -> RunResult {
        RunResult(status: .failed, error: error)
    }

    /// A failure that a retry cannot mend: `error` says what failed, `hint` what to do.
    public static func permanent(_ error: String, hint: String) -> RunResult {
        var result = RunResult(status: .failed, outcome: ["permanent": true], error: error + "\nhint: " + hint)
        result.permanent = true
        return result
    }
}

/// What a run does: a command's process, or an agent.
public protocol RunWork: Sendable {
    /// Does the work. Cancellation means the run timed out or the runner is shutting down:
    /// stop promptly and return what is known.
    func perform(_ run: RunInfo) async -> RunResult
}

/// What the work of a run may know about it.
public struct RunInfo: Sendable {
    public let runID: Int64
    public let job: Job
    /// The namespace of the job's table: the run's effects are recorded under it.
    public var namespace: String = JobTable.defaultNamespace
    public let slot: Date
    public let dryRun: Bool
    /// The database's clock when the run was claimed: what the agents compare against.
    public var now: Date?
    /// Its deadline, grace and lease fence.
    public let budget: RunBudget
}

/// Why a run's work is stopped: kept apart from the cancellation itself, so the work and the
/// record say what happened rather than guess.
public enum StopReason: String, Sendable {
    /// The job's `timeout` passed.
    case deadline
    /// SIGTERM or SIGINT: the runner is shutting down.
    case shutdown
    /// The heartbeat could not renew the run's lease: another process may claim the slot, so
    /// this one stops rather than overlap.
    case leaseLost = "lease_lost"
}
