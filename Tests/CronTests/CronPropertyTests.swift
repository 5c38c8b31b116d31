import Foundation
import Testing

@testable import Engine
@testable import Cron
@testable import RunnerSupport
import TestSupport

/// Generated expressions and instants, checked against a brute-force scan of the calendar.
@Suite("Cron properties")
struct CronPropertyTests {
    static let zones = [
        "UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham",
        "America/Sao_Paulo", "Asia/Kathmandu",
    ]

    /// A random but well-formed expression; fields favour the shapes people write.
    static func randomExpression(using generator: inout SplitMix64) -> String {
        func field(_ range: ClosedRange<Int>, wildcardWeight: Int) -> String {
            let roll = Int.random(in: 0..<10, using: &generator)
            if roll < wildcardWeight { return "*" }
            let low = Int.random(in: range, using: &generator)
            switch roll - wildcardWeight {
            case 0: return "*/\(Int.random(in: 2...max(2, range.count / 2), using: &generator))"
            case 1:
                let high = Int.random(in: low...range.upperBound, using: &generator)
                return "\(low)-\(high)"
            case 2:
                let high = Int.random(in: low...range.upperBound, using: &generator)
                return "\(low)-\(high)/\(Int.random(in: 1...4, using: &generator))"
            case 3:
                let other = Int.random(in: range, using: &generator)
                return "\(min(low, other)),\(max(low, other))"
            default: return "\(low)"
            }
        }
        var fields = [
            field(0...59, wildcardWeight: 3), field(0...23, wildcardWeight: 4), field(1...31, wildcardWeight: 7),
            field(1...12, wildcardWeight: 7), field(0...6, wildcardWeight: 6),
        ]
        if Int.random(in: 0..<10, using: &generator) == 0 { fields.insert(field(0...59, wildcardWeight: 2), at: 0) }
        return fields.joined(separator: " ")
    }

    struct Checker {
        let expression: CronExpression
        let zone: TimeZone

        func offset(_ instant: Int64) -> Int64 { Int64(zone.secondsFromGMT(for: Date(seconds: instant))) }
        func wall(_ instant: Int64) -> CivilTime { CivilTime(wallSeconds: instant + offset(instant)) }

        /// True when an earlier instant shows the same local time (the second pass of an overlap).
        func isRepeat(_ instant: Int64) -> Bool {
            let shift = offset(instant - 4 * 3600) - offset(instant)
            return shift > 0 && wall(instant - shift) == wall(instant)
        }

        func isFire(_ instant: Int64) -> Bool {
            expression.matches(wall(instant)) && (expression.followsElapsedTime || !isRepeat(instant))
        }

        /// A fire that does not match is allowed only as the end of a spring-forward gap.
        func isGapEnd(_ instant: Int64) -> Bool {
            !expression.followsElapsedTime && offset(instant - 1) < offset(instant)
        }
    }

    @Test("fires are after the instant, match in their zone, and none is skipped")
    func generated() throws {
        var generator = SplitMix64(seed: 20_261_122)
        var expressions = 0
        var scannedIntervals = 0
        var scannedInstants = 0
        while expressions < 4000 {
            let text = Self.randomExpression(using: &generator)
            guard let expression = try? CronExpression(parsing: text) else { continue }
            expressions += 1
            let zoneName = Self.zones.randomElement(using: &generator)!
            let zone = TimeZone(identifier: zoneName)!
            let schedule = try Schedule(parsing: text, timeZone: zone)
            let checker = Checker(expression: expression, zone: zone)
            let hasSeconds = text.split(separator: " ").count == 6
            let step: Int64 = hasSeconds ? 1 : 60
            // Instants from 2020 to 2035, on a whole minute half of the time.
            var start = Int64.random(in: 1_577_836_800...2_051_222_400, using: &generator)
            if Bool.random(using: &generator) { start -= start % 60 }
            var previous = start
            for _ in 0..<3 {
                guard let next = schedule.next(after: Date(seconds: previous)) else {
                    Issue.record("\(text) in \(zoneName) never fires after \(previous)")
                    break
                }
                let fire = Int64(next.timeIntervalSince1970)
                #expect(fire > previous, "\(text) in \(zoneName): \(fire) is not after \(previous)")
                #expect(
                    checker.isFire(fire) || checker.isGapEnd(fire),
                    "\(text) in \(zoneName): \(fire) does not match (local \(checker.wall(fire)))")
                // Scan every candidate instant in between, within a bounded window.
                let window: Int64 = hasSeconds ? 2 * 3600 : 2 * 86_400
                if fire - previous <= window {
                    scannedIntervals += 1
                    var instant = previous - (previous % step + step) % step + step
                    while instant < fire {
                        if instant > previous && checker.isFire(instant) {
                            Issue.record("\(text) in \(zoneName): skipped \(instant) (local \(checker.wall(instant)))")
                            return
                        }
                        scannedInstants += 1
                        instant += step
                    }
                }
                previous = fire
            }
        }
        #expect(expressions == 4000)
        // The generator must produce enough dense schedules for the scan to mean something.
        #expect(scannedIntervals > 4000)
        print(
            "cron property test: \(expressions) expressions, \(scannedIntervals) intervals, \(scannedInstants) instants scanned"
        )
    }
}
