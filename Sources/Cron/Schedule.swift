import Foundation
import RunnerSupport

/// When a job fires: a cron expression in a time zone, or a fixed interval aligned to the Unix epoch.
///
/// DST rule: a fixed local time fires exactly once per local day (in a spring-forward gap at
/// the first instant after the gap, in a fall-back overlap at its first occurrence only),
/// while an expression whose hour field is a wildcard or step fires at every instant whose
/// local time matches, so it keeps following elapsed time.
public struct Schedule: Sendable, Equatable {
    public enum Rule: Sendable, Equatable {
        case cron(CronExpression)
        /// `@every 90s`: every multiple of the interval since 1970-01-01T00:00:00Z, so that
        /// every replica and every `runner once` computes the same slots.
        case every(seconds: Int64)
    }

    public let text: String
    public let rule: Rule
    public let timeZone: TimeZone
    /// The zone's name as given; Foundation on Linux reports UTC's identifier as "GMT".
    public let timeZoneName: String

    public init(parsing text: String, timeZone: TimeZone = TimeZone(identifier: "UTC")!, timeZoneName: String? = nil)
        throws(CronError)
    {
        self.text = text
        self.timeZone = timeZone
        self.timeZoneName =
            timeZoneName
            ?? (timeZone.secondsFromGMT() == 0 && timeZone.identifier == "GMT" ? "UTC" : timeZone.identifier)
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.lowercased().hasPrefix("@every") {
            let argument = trimmed.dropFirst("@every".count).trimmingCharacters(in: .whitespaces)
            let duration: Duration
            do {
                duration = try DurationParser.parse(argument)
            } catch where error.tooLong {
                throw CronError("@every \(argument) is longer than 100 years")
            } catch {
                throw CronError("@every needs a duration such as 90s, 5m or 1h30m, got \"\(argument)\"")
            }
            guard duration >= .seconds(1), duration.components.attoseconds == 0 else {
                throw CronError("@every needs a whole number of seconds, at least 1s, got \"\(argument)\"")
            }
            rule = .every(seconds: duration.components.seconds)
        } else {
            rule = .cron(try CronExpression(parsing: trimmed))
        }
    }

    /// The first fire instant strictly after `date`, or nil if the expression never fires again.
    public func next(after date: Date) -> Date? {
        let after = Int64(date.timeIntervalSince1970.rounded(.down))
        switch rule {
        case .every(let interval):
            return Date(seconds: (CivilTime.floorDivide(after, interval) + 1) * interval)
        case .cron(let expression):
            return ZonedCron(expression: expression, zone: ZoneOffsets(timeZone)).next(after: after)
                .map(Date.init(seconds:))
        }
    }

    /// The latest fire instant at or before `date`, searching back at most `limit`.
    public func previous(atOrBefore date: Date, within limit: Duration = .seconds(366 * 86_400 * 8)) -> Date? {
        let limitSeconds = Double(limit.components.seconds)
        var window: Double = 1
        // Widen a look-back window until it holds a fire, then walk forward to the last one.
        while window <= limitSeconds * 2 {
            let from = date.addingTimeInterval(-min(window, limitSeconds))
            if var fire = next(after: from), fire <= date {
                while let later = next(after: fire), later <= date { fire = later }
                return fire
            }
            if window >= limitSeconds { break }
            window *= 2
        }
        return nil
    }

    /// The next `count` fire instants strictly after `date`.
    public func upcoming(after date: Date, count: Int) -> [Date] {
        var result: [Date] = []
        var cursor = date
        while result.count < count, let fire = next(after: cursor) {
            result.append(fire)
            cursor = fire
        }
        return result
    }
}

extension Date {
    package init(seconds: Int64) {
        self.init(timeIntervalSince1970: TimeInterval(seconds))
    }
}

/// A time zone's UTC offsets, with the shortcut that a zone without transitions has one offset.
package struct ZoneOffsets {
    package let timeZone: TimeZone
    package let fixedOffset: Int64?

    package init(_ timeZone: TimeZone) {
        self.timeZone = timeZone
        let hasTransitions = timeZone.nextDaylightSavingTimeTransition(after: Date(seconds: 0)) != nil
        fixedOffset = hasTransitions ? nil : Int64(timeZone.secondsFromGMT(for: Date(seconds: 0)))
    }

    package func offset(at instant: Int64) -> Int64 {
        fixedOffset ?? Int64(timeZone.secondsFromGMT(for: Date(seconds: instant)))
    }

    package func wall(_ instant: Int64) -> Int64 { instant + offset(at: instant) }

    /// Every instant whose local time is `wall`: none in a spring-forward gap, two in a
    /// fall-back overlap, otherwise one. Ascending.
    package func instants(ofWall wall: Int64) -> [Int64] {
        if let fixedOffset { return [wall - fixedOffset] }
        let guess = offset(at: wall)
        // Offsets in force a few hours either side: a wall time maps through one of them.
        let before = offset(at: wall - guess - 6 * 3600)
        let after = offset(at: wall - guess + 6 * 3600)
        var result: [Int64] = []
        for candidate in Set([before, after, guess]).map({ wall - $0 }).sorted()
        where offset(at: candidate) == wall - candidate {
            result.append(candidate)
        }
        return result
    }

    /// The first instant after the spring-forward gap that swallowed `wall`.
    package func endOfGap(containing wall: Int64) -> Int64 {
        let guess = offset(at: wall)
        let before = offset(at: wall - guess - 6 * 3600)
        let after = offset(at: wall - guess + 6 * 3600)
        // Binary search for the first instant carrying the later offset.
        var low = wall - max(before, after)
        var high = wall - min(before, after)
        while low < high {
            let mid = low + (high - low) / 2
            if offset(at: mid) == after { high = mid } else { low = mid + 1 }
        }
        return low
    }
}

/// A cron expression bound to a zone: the DST-aware search for the next fire.
package struct ZonedCron {
    package let expression: CronExpression
    package let zone: ZoneOffsets

    /// Largest offset change that can reorder wall times and instants near `instant`.
    private func offsetSlack(around instant: Int64) -> Int64 {
        if zone.fixedOffset != nil { return 0 }
        let a = zone.offset(at: instant - 3 * 3600)
        let b = zone.offset(at: instant + 3 * 3600)
        return abs(a - b)
    }

    /// The fire instants of one matching wall time, by the DST rule.
    private func fires(ofWall wall: Int64) -> [Int64] {
        let instants = zone.instants(ofWall: wall)
        if expression.followsElapsedTime { return instants }
        if let first = instants.first { return [first] }
        return [zone.endOfGap(containing: wall)]
    }

    package func next(after instant: Int64) -> Int64? {
        // A fall-back ahead of `instant` repeats wall times up to `slack` before its own.
        var cursor = zone.wall(instant) - offsetSlack(around: instant) - 1
        var best: Int64?
        var bestSlack: Int64 = 0
        var bestWall: Int64 = 0
        while let wall = expression.nextWallTime(after: cursor) {
            if best != nil, wall > bestWall + bestSlack { break }
            for fire in fires(ofWall: wall) where fire > instant && fire < (best ?? .max) {
                best = fire
                bestWall = wall
                bestSlack = offsetSlack(around: fire)
            }
            cursor = wall
        }
        return best
    }
}
