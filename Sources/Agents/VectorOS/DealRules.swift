import Foundation
import RunnerSupport

/// A deal as the anomaly rules see it. Every value may be missing; a missing value skips the
/// rules that need it, never the deal or its workspace.
public struct Deal: Sendable, Equatable {
    public var id: String
    public var workspaceID: String
    public var title: String
    public var value: Double?
    public var stage: String
    public var probability: Int?
    public var closeDate: Date?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, workspaceID: String, title: String, value: Double?, stage: String, probability: Int?,
        closeDate: Date?, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.workspaceID = workspaceID
        self.title = title
        self.value = value
        self.stage = stage
        self.probability = probability
        self.closeDate = closeDate
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// One rule's finding about a deal.
public struct Anomaly: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case stale
        case stuckInStage = "stuck_in_stage"
        case lowProbability = "low_probability"
        case highValueAtRisk = "high_value_at_risk"
        case closeDateRisk = "close_date_risk"
    }

    public enum Priority: String, Sendable, Comparable, CaseIterable {
        case low, medium, high, critical

        /// critical > high > medium > low, wherever the runner sorts.
        public var rank: Int { Self.allCases.firstIndex(of: self)! }
        public static func < (a: Priority, b: Priority) -> Bool { a.rank < b.rank }
    }

    public let kind: Kind
    public let priority: Priority
    /// What the rule saw, for the insight's text and `data`.
    public let detail: String
}

/// The five anomaly rules of the insight generator, with DESIGN.md's thresholds.
/// Day counts are whole days, rounded down.
public enum DealRules {
    package static let stuckDays = ["lead": 14, "qualified": 21, "proposal": 30, "negotiation": 21]
    package static let stuckDaysDefault = 30
    package static let lowProbability = ["lead": 5, "qualified": 20, "proposal": 40, "negotiation": 60]
    package static let lowProbabilityDefault = 10

    /// Whole days, rounded down; the caller passes finite dates (the page query reports others as bad rows).
    package static func wholeDays(from start: Date, to end: Date) -> Int {
        Checked.int((end.timeIntervalSince(start) / 86_400).rounded(.down)) ?? 0
    }

    /// A deal value as whole units; huge values in exponent form, never a trapping conversion.
    package static func formatValue(_ value: Double) -> String {
        if let whole = Checked.int(value) { return String(whole) }
        return value.isFinite ? String(format: "%.3g", value) : "unknown"
    }

    /// Every anomaly of a deal at `now`, most urgent first.
    public static func anomalies(of deal: Deal, now: Date) -> [Anomaly] {
        var found: [Anomaly] = []
        let stage = deal.stage.lowercased()
        let inactiveDays = wholeDays(from: deal.updatedAt, to: now)
        if inactiveDays > 7 {
            found.append(
                Anomaly(
                    kind: .stale, priority: inactiveDays > 14 ? .critical : .high,
                    detail: "no activity for \(inactiveDays) days"))
        }
        let ageDays = wholeDays(from: deal.createdAt, to: now)
        let stuckLimit = stuckDays[stage] ?? stuckDaysDefault
        if ageDays > stuckLimit {
            found.append(
                Anomaly(
                    kind: .stuckInStage, priority: .high,
                    detail: "\(ageDays) days old and still in \(deal.stage) (limit \(stuckLimit))"))
        }
        if let probability = deal.probability {
            let limit = lowProbability[stage] ?? lowProbabilityDefault
            if probability < limit {
                found.append(
                    Anomaly(
                        kind: .lowProbability, priority: .medium,
                        detail: "probability \(probability)% is below \(limit)% for \(deal.stage)"))
            }
        }
        if let value = deal.value, value > 10_000 {
            let inactive = inactiveDays > 5
            let unlikely = deal.probability.map { $0 < 30 } ?? false
            if inactive || unlikely {
                var reasons: [String] = []
                if inactive { reasons.append("inactive for \(inactiveDays) days") }
                if unlikely, let probability = deal.probability { reasons.append("probability \(probability)%") }
                found.append(
                    Anomaly(
                        kind: .highValueAtRisk, priority: .critical,
                        detail: "value \(formatValue(value)) at risk: " + reasons.joined(separator: ", ")))
            }
        }
        if let closeDate = deal.closeDate, let probability = deal.probability, probability < 70 {
            let daysToClose = wholeDays(from: now, to: closeDate)
            if (1...13).contains(daysToClose) {
                found.append(
                    Anomaly(
                        kind: .closeDateRisk, priority: .high,
                        detail: "closes in \(daysToClose) days with probability \(probability)%"))
            }
        }
        return found.sorted { $0.priority > $1.priority }
    }
}
