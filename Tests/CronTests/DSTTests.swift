import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import Cron
import TestSupport

/// Transitions of 2026: New York 03-08 (02:00→03:00) and 11-01 (02:00→01:00); London 03-29
/// (01:00→02:00) and 10-25 (02:00→01:00); Lord Howe 10-04 (02:00→02:30) and 04-05 (02:00→01:30).
@Suite("Daylight saving time")
struct DSTTests {
    static let transitions: [(zone: String, springDay: String, fallDay: String)] = [
        ("America/New_York", "2026-03-08", "2026-11-01"),
        ("Europe/London", "2026-03-29", "2026-10-25"),
        ("Australia/Lord_Howe", "2026-10-04", "2026-04-05"),
    ]

    static func fires(_ expression: String, _ zone: String, from: String, to: String) throws -> [Date] {
        let timeZone = try #require(TimeZone(identifier: zone))
        let schedule = try Schedule(parsing: expression, timeZone: timeZone)
        let start = try #require(InstantFormat.parse(from))
        let end = try #require(InstantFormat.parse(to))
        var fires: [Date] = []
        while let fire = schedule.next(after: fires.last ?? start), fire <= end { fires.append(fire) }
        return fires
    }

    static func local(_ dates: [Date], _ zone: String) -> [String] {
        dates.map { InstantFormat.string($0, in: TimeZone(identifier: zone)!) }
    }

    @Test("a daily time inside the spring-forward gap fires once, at the end of the gap")
    func springGapFiresAtEndOfGap() throws {
        let fires = try Self.fires(
            "30 2 * * *", "America/New_York", from: "2026-03-06T12:00:00Z", to: "2026-03-10T12:00:00Z")
        #expect(
            Self.local(fires, "America/New_York") == [
                "2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00",
                "2026-03-10T02:30:00-04:00",
            ])
        let london = try Self.fires(
            "30 1 * * *", "Europe/London", from: "2026-03-28T00:00:00Z", to: "2026-03-30T12:00:00Z")
        #expect(
            Self.local(london, "Europe/London") == [
                "2026-03-28T01:30:00+00:00", "2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00",
            ])
        let lordHowe = try Self.fires(
            "15 2 * * *", "Australia/Lord_Howe", from: "2026-10-02T12:00:00Z", to: "2026-10-05T12:00:00Z")
        #expect(
            Self.local(lordHowe, "Australia/Lord_Howe") == [
                "2026-10-03T02:15:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00",
            ])
    }

    @Test("several times inside one gap fire once between them")
    func gapTimesCollapse() throws {
        let fires = try Self.fires(
            "0,15,30,45 2 * * *", "America/New_York", from: "2026-03-08T00:00:00Z", to: "2026-03-08T23:00:00Z")
        #expect(Self.local(fires, "America/New_York") == ["2026-03-08T03:00:00-04:00"])
    }

    @Test("a daily time inside the fall-back overlap fires once, at its first occurrence")
    func fallOverlapFiresOnce() throws {
        let newYork = try Self.fires(
            "30 1 * * *", "America/New_York", from: "2026-10-31T00:00:00Z", to: "2026-11-03T00:00:00Z")
        #expect(
            Self.local(newYork, "America/New_York") == [
                "2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00",
            ])
        let london = try Self.fires(
            "30 1 * * *", "Europe/London", from: "2026-10-24T12:00:00Z", to: "2026-10-26T12:00:00Z")
        #expect(Self.local(london, "Europe/London") == ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"])
        let lordHowe = try Self.fires(
            "45 1 * * *", "Australia/Lord_Howe", from: "2026-04-04T00:00:00Z", to: "2026-04-06T00:00:00Z")
        #expect(
            Self.local(lordHowe, "Australia/Lord_Howe") == [
                "2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30",
            ])
    }

    @Test("starting inside the overlap, after the first occurrence, waits for the next day")
    func insideOverlapAfterFirstOccurrence() throws {
        // 05:45Z is 01:45 EDT, after the first 01:30; the second 01:30 (06:30Z) must not fire.
        let fires = try Self.fires(
            "30 1 * * *", "America/New_York", from: "2026-11-01T05:45:00Z", to: "2026-11-02T12:00:00Z")
        #expect(Self.local(fires, "America/New_York") == ["2026-11-02T01:30:00-05:00"])
    }

    @Test("fixed daily times fire exactly once per local day through both transitions", arguments: transitions)
    func onceADay(transition: (zone: String, springDay: String, fallDay: String)) throws {
        let zone = try #require(TimeZone(identifier: transition.zone))
        for day in [transition.springDay, transition.fallDay] {
            for expression in ["0 0 * * *", "30 1 * * *", "0 2 * * *", "30 2 * * *", "0 3 * * *", "59 23 * * *"] {
                let start = try #require(InstantFormat.parse(day + "T00:00:00Z")).addingTimeInterval(-4 * 86_400)
                let schedule = try Schedule(parsing: expression, timeZone: zone)
                let fires = schedule.upcoming(after: start, count: 8)
                let localDays = fires.map { String(InstantFormat.string($0, in: zone).prefix(10)) }
                #expect(Set(localDays).count == localDays.count, "\(expression) fired twice on a day: \(localDays)")
                let dayNumbers = fires.map { $0.timeIntervalSince1970 }
                for (a, b) in zip(dayNumbers, dayNumbers.dropFirst()) {
                    // Consecutive daily fires are 23 to 25 hours apart, never 0 or 48.
                    #expect(b - a >= 22.5 * 3600 && b - a <= 25.5 * 3600, "\(expression): \(localDays)")
                }
            }
        }
    }

    @Test("*/30 keeps 30 minutes of real time through both transitions", arguments: transitions)
    func halfHourly(transition: (zone: String, springDay: String, fallDay: String)) throws {
        for day in [transition.springDay, transition.fallDay] {
            let fires = try Self.fires(
                "*/30 * * * *", transition.zone, from: "\(day)T00:00:00Z", to: "\(day)T23:59:00Z")
            // Strictly after 00:00Z up to 23:59Z lie 47 half hours of real time, DST or not.
            #expect(fires.count == 47)
            let gaps = zip(fires, fires.dropFirst()).map { $1.timeIntervalSince($0) }
            #expect(gaps.allSatisfy { $0 == 1800 }, "\(transition.zone) \(day): \(Self.local(fires, transition.zone))")
        }
    }

    @Test("hourly keeps 60 minutes of real time through one-hour transitions")
    func hourlyOneHourShift() throws {
        for (zone, spring, fall) in Self.transitions.prefix(2) {
            for day in [spring, fall] {
                let fires = try Self.fires("0 * * * *", zone, from: "\(day)T00:00:00Z", to: "\(day)T23:59:00Z")
                #expect(fires.count == 23)
                let gaps = zip(fires, fires.dropFirst()).map { $1.timeIntervalSince($0) }
                #expect(gaps.allSatisfy { $0 == 3600 }, "\(zone) \(day): \(Self.local(fires, zone))")
            }
        }
    }

    @Test("hourly at :00 in Lord Howe: the 30-minute shift lands in one interval, nothing doubled or lost")
    func hourlyHalfHourShift() throws {
        // Local :00 is :30 UTC before the spring change and :00 UTC after it, so one interval
        // must absorb the half hour. Spring: 01:00 (+10:30), gap 02:00-02:30, 03:00 (+11:00).
        let spring = try Self.fires(
            "0 * * * *", "Australia/Lord_Howe", from: "2026-10-03T13:00:00Z", to: "2026-10-03T18:00:00Z")
        #expect(
            Self.local(spring, "Australia/Lord_Howe") == [
                "2026-10-04T00:00:00+10:30", "2026-10-04T01:00:00+10:30", "2026-10-04T03:00:00+11:00",
                "2026-10-04T04:00:00+11:00", "2026-10-04T05:00:00+11:00",
            ])
        // Fall: 02:00 (+11:00) becomes 01:30 (+10:30); 01:00 happens once, 02:00 once after it.
        let fall = try Self.fires(
            "0 * * * *", "Australia/Lord_Howe", from: "2026-04-04T13:00:00Z", to: "2026-04-04T18:00:00Z")
        #expect(
            Self.local(fall, "Australia/Lord_Howe") == [
                "2026-04-05T01:00:00+11:00", "2026-04-05T02:00:00+10:30", "2026-04-05T03:00:00+10:30",
                "2026-04-05T04:00:00+10:30",
            ])
        let gaps = zip(fall, fall.dropFirst()).map { $1.timeIntervalSince($0) }
        #expect(gaps == [5400, 3600, 3600])
    }

    @Test("a wildcard-hour schedule fires at both occurrences of a repeated half hour")
    func elapsedTimeRepeatsOverlap() throws {
        let fires = try Self.fires(
            "30 * * * *", "America/New_York", from: "2026-11-01T04:00:00Z", to: "2026-11-01T08:00:00Z")
        #expect(
            Self.local(fires, "America/New_York") == [
                "2026-11-01T00:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00",
                "2026-11-01T02:30:00-05:00",
            ])
    }

    @Test("a weekly job on the transition day keeps its local time")
    func weeklyKeepsLocalTime() throws {
        let fires = try Self.fires(
            "0 16 * * SUN", "Europe/London", from: "2026-10-17T00:00:00Z", to: "2026-11-02T00:00:00Z")
        #expect(
            Self.local(fires, "Europe/London") == [
                "2026-10-18T16:00:00+01:00", "2026-10-25T16:00:00+00:00", "2026-11-01T16:00:00+00:00",
            ])
    }
}
