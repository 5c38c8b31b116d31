import Foundation
import RunnerSupport

/// A parsed cron expression: five fields, or six with a leading seconds field.
///
/// It knows nothing about time zones; ``Schedule`` turns its wall-clock matches into instants.
public struct CronExpression: Equatable, Sendable {
    package let seconds: CronField
    package let minutes: CronField
    package let hours: CronField
    package let daysOfMonth: CronField
    package let months: CronField
    package let daysOfWeek: CronField

    /// True when the hour field is a wildcard or a step (`*`, `*/2`, `8-18/2`): the schedule
    /// then follows elapsed time across DST changes instead of firing once per local day.
    public let followsElapsedTime: Bool

    package static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
        "@hourly": "0 * * * *",
    ]

    public init(parsing text: String) throws(CronError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var expanded = trimmed
        if trimmed.hasPrefix("@") {
            guard let macro = Self.macros[trimmed.lowercased()] else {
                throw CronError(
                    "unknown macro \"\(trimmed)\" (expected @yearly, @monthly, @weekly, @daily, @midnight, "
                        + "@hourly or @every <duration>)")
            }
            expanded = macro
        }
        var fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 || fields.count == 6 else {
            throw CronError(
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with a leading "
                    + "seconds field, found \(fields.count)")
        }
        if fields.count == 5 { fields.insert("0", at: 0) }
        seconds = try CronField(parsing: fields[0], kind: .second)
        minutes = try CronField(parsing: fields[1], kind: .minute)
        hours = try CronField(parsing: fields[2], kind: .hour)
        daysOfMonth = try CronField(parsing: fields[3], kind: .dayOfMonth)
        months = try CronField(parsing: fields[4], kind: .month)
        daysOfWeek = try CronField(parsing: fields[5], kind: .dayOfWeek)
        followsElapsedTime = fields[2].contains("*") || fields[2].contains("/")
        try checkPossible()
    }

    /// Rejects expressions that can never fire, such as `0 0 30 2 *`.
    private func checkPossible() throws(CronError) {
        guard usesDayOfMonthAndDayOfWeekTogether else { return }
        let longest = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        let possible = months.values.contains { month in
            daysOfMonth.values.contains { $0 <= longest[month - 1] }
        }
        guard possible else {
            let names = ["", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            let monthList = months.values.map { names[$0] }.joined(separator: ", ")
            let dayList = daysOfMonth.values.map(String.init).joined(separator: ", ")
            throw CronError("never fires: day-of-month \(dayList) does not exist in \(monthList)")
        }
    }

    /// Vixie cron: when either day field starts with `*`, a day must match both; otherwise either.
    private var usesDayOfMonthAndDayOfWeekTogether: Bool {
        daysOfMonth.startsWithStar || daysOfWeek.startsWithStar
    }

    package func matchesDay(year: Int, month: Int, day: Int) -> Bool {
        let domMatch = daysOfMonth.contains(day)
        let dowMatch = daysOfWeek.contains(
            CivilTime.weekday(days: CivilTime.days(year: year, month: month, day: day)))
        return usesDayOfMonthAndDayOfWeekTogether ? (domMatch && dowMatch) : (domMatch || dowMatch)
    }

    package func matches(_ time: CivilTime) -> Bool {
        months.contains(time.month) && matchesDay(year: time.year, month: time.month, day: time.day)
            && hours.contains(time.hour) && minutes.contains(time.minute) && seconds.contains(time.second)
    }

    /// The first wall time strictly after `wall` that matches, stepping by the coarsest
    /// field that fails rather than minute by minute. Nil if none within `yearLimit` years.
    package func nextWallTime(after wall: Int64, yearLimit: Int = 400) -> Int64? {
        var t = CivilTime(wallSeconds: wall + 1)
        let lastYear = t.year + yearLimit
        while t.year <= lastYear {
            guard months.contains(t.month) else {
                if let month = months.next(atOrAbove: t.month + 1) {
                    t = CivilTime(year: t.year, month: month, day: 1)
                } else {
                    t = CivilTime(year: t.year + 1, month: months.first!, day: 1)
                }
                continue
            }
            guard matchesDay(year: t.year, month: t.month, day: t.day) else {
                t = Self.startOfNextDay(t)
                continue
            }
            guard hours.contains(t.hour) else {
                if let hour = hours.next(atOrAbove: t.hour + 1) {
                    t = CivilTime(year: t.year, month: t.month, day: t.day, hour: hour)
                } else {
                    t = Self.startOfNextDay(t)
                }
                continue
            }
            guard minutes.contains(t.minute) else {
                if let minute = minutes.next(atOrAbove: t.minute + 1) {
                    t.minute = minute
                    t.second = 0
                } else {
                    t = CivilTime(
                        wallSeconds: CivilTime(year: t.year, month: t.month, day: t.day, hour: t.hour)
                            .wallSeconds + 3600)
                }
                continue
            }
            guard seconds.contains(t.second) else {
                if let second = seconds.next(atOrAbove: t.second + 1) {
                    t.second = second
                } else {
                    t = CivilTime(wallSeconds: t.wallSeconds - Int64(t.second) + 60)
                }
                continue
            }
            return t.wallSeconds
        }
        return nil
    }

    private static func startOfNextDay(_ t: CivilTime) -> CivilTime {
        if t.day < CivilTime.daysInMonth(year: t.year, month: t.month) {
            return CivilTime(year: t.year, month: t.month, day: t.day + 1)
        }
        if t.month < 12 { return CivilTime(year: t.year, month: t.month + 1, day: 1) }
        return CivilTime(year: t.year + 1, month: 1, day: 1)
    }
}
