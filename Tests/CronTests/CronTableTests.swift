import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import Cron
import TestSupport

/// Next fire times of many expressions, checked by hand against a calendar.
/// 2026-01-15 is a Thursday; the search starts at 2026-01-15T10:17:23Z unless a case says otherwise.
@Suite("Cron expression table")
struct CronTableTests {
    static let thursday = "2026-01-15T10:17:23Z"

    static let cases: [(expression: String, zone: String, after: String, next: String)] = [
        ("* * * * *", "UTC", thursday, "2026-01-15T10:18:00+00:00"),
        ("*/15 * * * *", "UTC", thursday, "2026-01-15T10:30:00+00:00"),
        ("0 * * * *", "UTC", thursday, "2026-01-15T11:00:00+00:00"),
        ("17 * * * *", "UTC", thursday, "2026-01-15T11:17:00+00:00"),
        ("30 10 * * *", "UTC", thursday, "2026-01-15T10:30:00+00:00"),
        ("0 9 * * *", "UTC", thursday, "2026-01-16T09:00:00+00:00"),
        ("0 0 * * *", "UTC", thursday, "2026-01-16T00:00:00+00:00"),
        ("@daily", "UTC", thursday, "2026-01-16T00:00:00+00:00"),
        ("@midnight", "UTC", thursday, "2026-01-16T00:00:00+00:00"),
        ("@hourly", "UTC", thursday, "2026-01-15T11:00:00+00:00"),
        ("@weekly", "UTC", thursday, "2026-01-18T00:00:00+00:00"),
        ("@monthly", "UTC", thursday, "2026-02-01T00:00:00+00:00"),
        ("@yearly", "UTC", thursday, "2027-01-01T00:00:00+00:00"),
        ("@annually", "UTC", thursday, "2027-01-01T00:00:00+00:00"),
        ("0 16 * * FRI", "UTC", thursday, "2026-01-16T16:00:00+00:00"),
        ("0 16 * * 5", "UTC", thursday, "2026-01-16T16:00:00+00:00"),
        ("0 9 * * MON-FRI", "UTC", thursday, "2026-01-16T09:00:00+00:00"),
        ("0 9 * * sat,sun", "UTC", thursday, "2026-01-17T09:00:00+00:00"),
        ("0 9 * * 0", "UTC", thursday, "2026-01-18T09:00:00+00:00"),
        ("0 9 * * 7", "UTC", thursday, "2026-01-18T09:00:00+00:00"),
        ("0 0 1 * *", "UTC", thursday, "2026-02-01T00:00:00+00:00"),
        ("0 0 15 * *", "UTC", thursday, "2026-02-15T00:00:00+00:00"),
        ("0 12 15 * *", "UTC", thursday, "2026-01-15T12:00:00+00:00"),
        ("0 0 31 * *", "UTC", thursday, "2026-01-31T00:00:00+00:00"),
        ("0 0 31 * *", "UTC", "2026-01-31T00:00:00Z", "2026-03-31T00:00:00+00:00"),
        ("0 0 31 2,4,5 *", "UTC", thursday, "2026-05-31T00:00:00+00:00"),
        ("0 0 29 2 *", "UTC", thursday, "2028-02-29T00:00:00+00:00"),
        ("0 0 29 2 *", "UTC", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00+00:00"),
        ("0 0 1 JAN *", "UTC", thursday, "2027-01-01T00:00:00+00:00"),
        ("0 0 1 jan-mar *", "UTC", thursday, "2026-02-01T00:00:00+00:00"),
        // Day-of-month "*": a day must be in February and a Monday.
        ("0 0 * FEB MON", "UTC", thursday, "2026-02-02T00:00:00+00:00"),
        // Both restricted: the 13th OR a Friday (Vixie cron).
        ("0 0 13 * FRI", "UTC", thursday, "2026-01-16T00:00:00+00:00"),
        // Day-of-month starts with "*": Mondays that are also days 1, 6, 11, ... 31.
        ("0 0 */5 * MON", "UTC", thursday, "2026-01-26T00:00:00+00:00"),
        ("0 0 1,15 * 3", "UTC", thursday, "2026-01-21T00:00:00+00:00"),
        ("5,10,15 * * * *", "UTC", thursday, "2026-01-15T11:05:00+00:00"),
        ("10-20 * * * *", "UTC", thursday, "2026-01-15T10:18:00+00:00"),
        ("10-40/10 * * * *", "UTC", thursday, "2026-01-15T10:20:00+00:00"),
        ("5/20 * * * *", "UTC", thursday, "2026-01-15T10:25:00+00:00"),
        ("0 */6 * * *", "UTC", thursday, "2026-01-15T12:00:00+00:00"),
        ("0 8-18/4 * * *", "UTC", thursday, "2026-01-15T12:00:00+00:00"),
        ("15 14 1 * *", "UTC", thursday, "2026-02-01T14:15:00+00:00"),
        ("*/10 * * * * *", "UTC", thursday, "2026-01-15T10:17:30+00:00"),
        ("30 0 10 * * *", "UTC", thursday, "2026-01-16T10:00:30+00:00"),
        ("0 0 0 1 1 *", "UTC", thursday, "2027-01-01T00:00:00+00:00"),
        ("0 22 * * 1-5", "UTC", thursday, "2026-01-15T22:00:00+00:00"),
        ("59 23 31 12 *", "UTC", thursday, "2026-12-31T23:59:00+00:00"),
        ("0 0 * * *", "UTC", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00+00:00"),
        ("* * * * *", "UTC", "2026-01-15T10:17:00Z", "2026-01-15T10:18:00+00:00"),
        ("0 9 * * *", "Europe/London", thursday, "2026-01-16T09:00:00+00:00"),
        ("0 9 * * *", "America/New_York", thursday, "2026-01-15T09:00:00-05:00"),
        ("0 9 * * *", "Asia/Tokyo", thursday, "2026-01-16T09:00:00+09:00"),
        ("30 18 * * *", "Asia/Kolkata", thursday, "2026-01-15T18:30:00+05:30"),
        ("0 0 * * *", "Pacific/Auckland", thursday, "2026-01-16T00:00:00+13:00"),
        ("0 16 * * FRI", "Europe/London", "2026-06-01T00:00:00Z", "2026-06-05T16:00:00+01:00"),
        ("0 12 * * *", "Australia/Lord_Howe", thursday, "2026-01-16T12:00:00+11:00"),
        ("45 5 * * *", "Asia/Kathmandu", thursday, "2026-01-16T05:45:00+05:45"),
    ]

    @Test("next fire time", arguments: cases)
    func nextFire(testCase: (expression: String, zone: String, after: String, next: String)) throws {
        let zone = try #require(TimeZone(identifier: testCase.zone))
        let schedule = try Schedule(parsing: testCase.expression, timeZone: zone)
        let after = try #require(InstantFormat.parse(testCase.after))
        let next = try #require(schedule.next(after: after))
        #expect(InstantFormat.string(next, in: zone) == testCase.next)
    }

    @Test("@every slots are aligned to the Unix epoch, the same from any starting instant")
    func everyIsEpochAligned() throws {
        let schedule = try Schedule(parsing: "@every 90s")
        for start in stride(from: 1_768_472_243.0, to: 1_768_472_243 + 400, by: 7.5) {
            let next = try #require(schedule.next(after: Date(timeIntervalSince1970: start)))
            let seconds = Int(next.timeIntervalSince1970)
            #expect(seconds % 90 == 0)
            #expect(next.timeIntervalSince1970 > start)
            #expect(next.timeIntervalSince1970 - start <= 90)
        }
        let hourAndHalf = try Schedule(parsing: "@every 1h30m")
        let next = try #require(hourAndHalf.next(after: Date(timeIntervalSince1970: 0)))
        #expect(next.timeIntervalSince1970 == 5400)
    }

    @Test("previous finds the latest slot at or before an instant")
    func previous() throws {
        let utc = TimeZone(identifier: "UTC")!
        let halfHourly = try Schedule(parsing: "*/30 * * * *", timeZone: utc)
        let at = try #require(InstantFormat.parse("2026-01-15T10:17:23Z"))
        #expect(
            halfHourly.previous(atOrBefore: at).map { InstantFormat.string($0, in: utc) } == "2026-01-15T10:00:00+00:00"
        )
        let exact = try #require(InstantFormat.parse("2026-01-15T10:30:00Z"))
        #expect(halfHourly.previous(atOrBefore: exact) == exact)
        let leap = try Schedule(parsing: "0 0 29 2 *", timeZone: utc)
        #expect(leap.previous(atOrBefore: at).map { InstantFormat.string($0, in: utc) } == "2024-02-29T00:00:00+00:00")
        #expect(leap.previous(atOrBefore: at, within: .seconds(86_400 * 365)) == nil)
    }

    static let invalid: [(expression: String, problem: String)] = [
        ("", "expected 5 fields"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * * *", "found 7"),
        ("60 * * * *", "minute field \"60\": 60 is out of range 0-59"),
        ("* 24 * * *", "hour field \"24\": 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month field \"0\": 0 is out of range 1-31"),
        ("* * 32 * *", "day-of-month field \"32\""),
        ("* * * 13 *", "month field \"13\": 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week field \"8\": 8 is out of range 0-7"),
        ("60 * * * * *", "second field \"60\""),
        ("*/0 * * * *", "step must be a whole number of at least 1"),
        ("*/x * * * *", "step must be a whole number"),
        ("*/61 * * * *", "step 61 is larger than the field's range"),
        ("1/2/3 * * * *", "more than one '/'"),
        ("30-10 * * * *", "range start 30 is after its end 10"),
        ("* * * FOO *", "\"FOO\" is not a number or a name (JAN-DEC)"),
        ("* * * * FUNDAY", "\"FUNDAY\" is not a number or a name (SUN-SAT)"),
        ("MON * * * *", "\"MON\" is not a number"),
        ("1,,2 * * * *", "empty list item"),
        ("0 0 30 2 *", "never fires: day-of-month 30 does not exist in Feb"),
        ("0 0 31 4 *", "never fires: day-of-month 31 does not exist in Apr"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("@fortnightly", "unknown macro \"@fortnightly\""),
        ("@every", "@every needs a duration"),
        ("@every soon", "@every needs a duration"),
        ("@every 0s", "at least 1s"),
        ("@every 1500ms", "whole number of seconds"),
    ]

    @Test("invalid expressions are rejected with the reason", arguments: invalid)
    func rejects(testCase: (expression: String, problem: String)) {
        #expect {
            try Schedule(parsing: testCase.expression)
        } throws: { error in
            (error as? CronError)?.message.contains(testCase.problem) == true
        }
    }

    @Test("a day-of-month both restricted and ORed with a weekday is possible even on Feb 30")
    func orModeIsNeverImpossible() throws {
        // Vixie OR: "30th of February or any Monday" fires on Mondays.
        let schedule = try Schedule(parsing: "0 0 30 2 MON")
        let next = try #require(schedule.next(after: InstantFormat.parse("2026-01-15T00:00:00Z")!))
        #expect(InstantFormat.string(next, in: TimeZone(identifier: "UTC")!) == "2026-02-02T00:00:00+00:00")
    }

    @Test("civil-time arithmetic agrees with Foundation's calendar")
    func civilTimeMatchesFoundation() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var generator = SplitMix64(seed: 7)
        for _ in 0..<2000 {
            let seconds = Int64.random(in: -2_000_000_000...5_000_000_000, using: &generator)
            let civil = CivilTime(wallSeconds: seconds)
            let parts = calendar.dateComponents(
                [.year, .month, .day, .hour, .minute, .second, .weekday], from: Date(seconds: seconds))
            #expect(
                [civil.year, civil.month, civil.day, civil.hour, civil.minute, civil.second, civil.weekday + 1]
                    == [parts.year, parts.month, parts.day, parts.hour, parts.minute, parts.second, parts.weekday])
            #expect(civil.wallSeconds == seconds)
        }
    }
}

@Suite("ISO-8601 instants")
struct InstantFormatTests {
    @Test(
        "parses Z, offsets and fractions",
        arguments: [
            ("2026-03-29T01:00:00Z", 1_774_746_000.0),
            ("2026-03-29T03:00:00+02:00", 1_774_746_000.0),
            ("2026-03-28T20:00:00-05:00", 1_774_746_000.0),
            ("2026-03-29T06:30:00+05:30", 1_774_746_000.0),
            ("2026-03-29T01:00:00.250Z", 1_774_746_000.25),
        ])
    func parses(text: String, seconds: Double) {
        #expect(InstantFormat.parse(text)?.timeIntervalSince1970 == seconds)
    }

    @Test(
        "rejects what is not an instant",
        arguments: [
            "2026-03-29", "2026-03-29T01:00:00", "2026-02-30T00:00:00Z", "2026-03-29T24:00:00Z", "yesterday",
            "2026-03-29T01:00:00+2", "2026-03-29T01:00:00Zjunk",
        ])
    func rejects(text: String) {
        #expect(InstantFormat.parse(text) == nil)
    }

    @Test("prints the local time with its offset")
    func prints() {
        let instant = Date(timeIntervalSince1970: 1_774_746_000)
        #expect(
            InstantFormat.string(instant, in: TimeZone(identifier: "Europe/Berlin")!) == "2026-03-29T03:00:00+02:00")
        #expect(
            InstantFormat.string(instant, in: TimeZone(identifier: "America/St_Johns")!) == "2026-03-28T22:30:00-02:30")
        #expect(InstantFormat.string(instant, in: TimeZone(identifier: "UTC")!) == "2026-03-29T01:00:00+00:00")
    }
}
