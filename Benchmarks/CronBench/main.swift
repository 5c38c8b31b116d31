import Cron
import Foundation

// In-process cost of one `Schedule.next(after:)`, for common and rare expressions.
// Run: swift run -c release cron-bench

let cases: [(String, String)] = [
    ("*/30 * * * *", "UTC"),
    ("0 16 * * FRI", "Europe/London"),
    ("30 2 * * *", "America/New_York"),
    ("0 0 29 2 *", "UTC"),
    ("0 0 29 2 MON", "UTC"),
    ("*/7 3 13 * FRI", "Australia/Lord_Howe"),
    ("*/10 * * * * *", "Asia/Kolkata"),
]
let start = Date(timeIntervalSince1970: 1_772_323_200)  // 2026-03-01T00:00:00Z
let clock = ContinuousClock()
print("expression                      zone                  next() µs   (1,000 chained calls)")
for (text, zoneName) in cases {
    let schedule = try Schedule(parsing: text, timeZone: TimeZone(identifier: zoneName)!)
    var cursor = start
    let elapsed = clock.measure {
        for _ in 0..<1000 { cursor = schedule.next(after: cursor)! }
    }
    let micros = Double(elapsed.components.attoseconds) / 1e12 / 1000 + Double(elapsed.components.seconds) * 1e3
    print(
        text.padding(toLength: 32, withPad: " ", startingAt: 0)
            + zoneName.padding(toLength: 22, withPad: " ", startingAt: 0)
            + String(format: "%9.2f", micros))
}
