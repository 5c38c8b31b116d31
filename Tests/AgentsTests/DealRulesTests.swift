import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import VectorOS
import TestSupport

/// The insight generator's five rules at their boundaries. "N days" means N whole days plus a
/// few hours, so the whole-day count is exactly N.
@Suite("Deal anomaly rules")
struct DealRulesTests {
    static let now = InstantFormat.parse("2026-11-22T12:00:00Z")!

    static func ago(_ days: Int) -> Date { now.addingTimeInterval(-(Double(days) * 86_400 + 3_600)) }
    static func ahead(_ days: Int) -> Date { now.addingTimeInterval(Double(days) * 86_400 + 3_600) }

    /// A healthy deal: fresh, young, likely, small, no close date.
    static func deal(
        stage: String = "qualified", value: Double? = 5_000, probability: Int? = 50, closeDate: Date? = nil,
        createdDaysAgo: Int = 1, updatedDaysAgo: Int = 0
    ) -> Deal {
        Deal(
            id: "d1", workspaceID: "w1", title: "Deal", value: value, stage: stage, probability: probability,
            closeDate: closeDate, createdAt: ago(createdDaysAgo), updatedAt: ago(updatedDaysAgo))
    }

    static func kinds(_ deal: Deal) -> [String] {
        DealRules.anomalies(of: deal, now: now).map { "\($0.kind.rawValue):\($0.priority.rawValue)" }
    }

    @Test("a healthy deal has no anomaly")
    func healthy() {
        #expect(Self.kinds(Self.deal()).isEmpty)
    }

    @Test(
        "stale: more than 7 days without activity, critical past 14",
        arguments: [
            (7, [String]()), (8, ["stale:high"]), (14, ["stale:high"]), (15, ["stale:critical"]),
        ])
    func stale(days: Int, expected: [String]) {
        #expect(
            Self.kinds(Self.deal(createdDaysAgo: days, updatedDaysAgo: days)).filter { $0.hasPrefix("stale") }
                == expected)
    }

    @Test(
        "stuck in stage by stage limit",
        arguments: [
            ("lead", 14, false), ("lead", 15, true), ("qualified", 21, false), ("qualified", 22, true),
            ("proposal", 30, false), ("proposal", 31, true), ("negotiation", 21, false), ("negotiation", 22, true),
            ("discovery", 30, false), ("discovery", 31, true),
        ])
    func stuck(stage: String, age: Int, stuck: Bool) {
        let found = Self.kinds(Self.deal(stage: stage, probability: 90, createdDaysAgo: age))
        #expect(found.contains("stuck_in_stage:high") == stuck, "\(stage) \(age): \(found)")
    }

    @Test(
        "low probability by stage limit",
        arguments: [
            ("lead", 4, true), ("lead", 5, false), ("qualified", 19, true), ("qualified", 20, false),
            ("proposal", 39, true), ("proposal", 40, false), ("negotiation", 59, true), ("negotiation", 60, false),
            ("other", 9, true), ("other", 10, false),
        ])
    func lowProbability(stage: String, probability: Int, low: Bool) {
        let found = Self.kinds(Self.deal(stage: stage, probability: probability))
        #expect(found.contains("low_probability:medium") == low, "\(stage) \(probability): \(found)")
    }

    @Test("high value at risk: value over 10,000 and inactive over 5 days or probability under 30")
    func highValue() {
        func risky(_ value: Double?, probability: Int?, inactive: Int) -> Bool {
            Self.kinds(
                Self.deal(
                    stage: "lead", value: value, probability: probability, createdDaysAgo: inactive,
                    updatedDaysAgo: inactive)
            )
            .contains("high_value_at_risk:critical")
        }
        #expect(!risky(10_000, probability: 10, inactive: 6))
        #expect(risky(10_001, probability: 10, inactive: 0))
        #expect(risky(10_001, probability: 90, inactive: 6))
        #expect(!risky(10_001, probability: 90, inactive: 5))
        #expect(!risky(10_001, probability: 30, inactive: 0))
        #expect(risky(10_001, probability: 29, inactive: 0))
        #expect(!risky(nil, probability: 1, inactive: 30))
        #expect(risky(50_000, probability: nil, inactive: 6))
        #expect(!risky(50_000, probability: nil, inactive: 0))
    }

    @Test(
        "close-date risk: closes in 1 to 13 days with probability under 70",
        arguments: [
            (0, 50, false), (1, 50, true), (13, 50, true), (14, 50, false), (5, 69, true), (5, 70, false),
        ])
    func closeDate(days: Int, probability: Int, risky: Bool) {
        let deal = Self.deal(
            probability: probability, closeDate: days == 0 ? Self.now.addingTimeInterval(3_600) : Self.ahead(days))
        #expect(Self.kinds(deal).contains("close_date_risk:high") == risky, "\(days) days, \(probability)%")
    }

    @Test("NULL value and probability skip only the rules that need them")
    func nulls() {
        let deal = Self.deal(
            stage: "lead", value: nil, probability: nil, closeDate: Self.ahead(3), createdDaysAgo: 20, updatedDaysAgo: 9
        )
        #expect(Self.kinds(deal) == ["stale:high", "stuck_in_stage:high"])
    }

    @Test("anomalies come most urgent first")
    func ordering() {
        let deal = Self.deal(stage: "lead", value: 20_000, probability: 1, createdDaysAgo: 40, updatedDaysAgo: 20)
        let priorities = DealRules.anomalies(of: deal, now: Self.now).map(\.priority)
        #expect(priorities == priorities.sorted(by: >))
        #expect(priorities.first == .critical)
        #expect(Anomaly.Priority.critical > .high && Anomaly.Priority.high > .medium && Anomaly.Priority.medium > .low)
    }
}
