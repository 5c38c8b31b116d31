import Foundation

/// How one run ended, before it is written to the ledger.
public struct RunResult: Sendable, Equatable {
    public var status: RunStatus
    public var outcome: JSONValue?
    public var error: String?
    public var metrics: [Metric]

    public init(status: RunStatus, outcome: JSONValue? = nil, error: String? = nil, metrics: [Metric] = []) {
        self.status = status
        self.outcome = outcome
        self.error = error
        self.metrics = metrics
    }

    public static func failed(_ error: String) -> RunResult {
        RunResult(status: .failed, error: error)
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
    public let slot: Date
    public let dryRun: Bool
}
