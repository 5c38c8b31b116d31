import Foundation
import RunnerSupport

/// What an agent reports: the run's outcome summary and its counters.
public struct AgentReport: Sendable, Equatable {
    public var outcome: [String: JSONValue]
    public var metrics: [Metric]
    /// Set when part of the work failed (an email that could not be sent): the run fails.
    public var failure: String?

    public init(outcome: [String: JSONValue] = [:], metrics: [Metric] = [], failure: String? = nil) {
        self.outcome = outcome
        self.metrics = metrics
        self.failure = failure
    }
}

/// Builds an agent's report. A count is given once and lands in both the outcome (what
/// `runner history` shows) and the metrics table; what belongs to only one says so.
public struct ReportBuilder: Sendable {
    private var outcome: [String: JSONValue] = [:]
    private var metrics: [Metric] = []
    private var metricNames: [String: Int] = [:]
    public var failure: String?

    public init() {}

    /// A count in the outcome and the metrics; with `omitZero`, a zero is left out of both.
    public mutating func count(_ name: String, _ value: Int, omitZero: Bool = false) {
        if omitZero, value == 0 { return }
        outcome[name] = .number(Double(value))
        metric(name, Double(value))
    }

    /// A value for the outcome only (a label, a list, a count that is no metric).
    public mutating func note(_ name: String, _ value: JSONValue) {
        outcome[name] = value
    }

    /// A count for the outcome only, left out when zero.
    public mutating func note(_ name: String, count value: Int) {
        if value != 0 { outcome[name] = .number(Double(value)) }
    }

    /// A metric only; a second value under one name replaces the first.
    public mutating func metric(_ name: String, _ value: Double, unit: String? = nil) {
        let metric = Metric(name, value, unit: unit ?? "")
        if let index = metricNames[name] {
            metrics[index] = metric
        } else {
            metricNames[name] = metrics.count
            metrics.append(metric)
        }
    }

    /// How long a phase of the run took, as a metric in milliseconds.
    public mutating func phase(_ name: String, _ duration: Duration) {
        metric(name, duration.milliseconds, unit: "ms")
    }

    public func value(_ name: String) -> JSONValue? { outcome[name] }

    public var report: AgentReport { AgentReport(outcome: outcome, metrics: metrics, failure: failure) }
}

/// Time a run spent per phase (reading, recording, sending), summed over its pages.
package struct PhaseTimer: Sendable {
    package init() {}

    private var totals: [String: Duration] = [:]

    package mutating func time<T>(_ phase: String, _ body: () async throws -> T) async rethrows -> T {
        let start = ContinuousClock.now
        defer { totals[phase, default: .zero] += ContinuousClock.now - start }
        return try await body()
    }

    package mutating func add(_ phase: String, _ duration: Duration) {
        totals[phase, default: .zero] += duration
    }

    package func report(into report: inout ReportBuilder) {
        for (phase, total) in totals.sorted(by: { $0.key < $1.key }) { report.phase(phase, total) }
    }
}
