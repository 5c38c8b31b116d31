import Foundation

/// Reads and writes durations such as `90s`, `30m`, `48h`, `7d`, `1h30m` and `500ms`.
public enum DurationParser {
    public struct Failure: Error, Equatable, Sendable {
        public let text: String
        /// The text is a duration, but longer than ``maximum``.
        public var tooLong = false
    }

    /// The longest duration anything accepts: 100 years. Anything longer is a typo, and
    /// arithmetic on it (instants, intervals, milliseconds) could overflow.
    public static let maximum: Duration = .seconds(100 * 36_525 * 864)

    package static let units: [(suffix: String, milliseconds: Int64)] = [
        ("ms", 1), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
    ]

    public static func parse(_ text: String) throws(Failure) -> Duration {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        guard !rest.isEmpty else { throw Failure(text: text) }
        var total: Int64 = 0
        while !rest.isEmpty {
            let digits = rest.prefix(while: \.isASCII).prefix(while: \.isNumber)
            guard !digits.isEmpty, let number = Int64(digits) else { throw Failure(text: text) }
            rest = rest.dropFirst(digits.count)
            guard let unit = units.first(where: { rest.hasPrefix($0.suffix) }) else { throw Failure(text: text) }
            rest = rest.dropFirst(unit.suffix.count)
            let (product, overflow) = number.multipliedReportingOverflow(by: unit.milliseconds)
            guard !overflow, product < Int64.max - total else { throw Failure(text: text) }
            total += product
        }
        guard Duration.milliseconds(total) <= maximum else { throw Failure(text: text, tooLong: true) }
        return .milliseconds(total)
    }

    /// The shortest form that reads back to the same duration: `1h30m`, `45s`, `250ms`.
    public static func format(_ duration: Duration) -> String {
        var milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds == 0 { return "0s" }
        var parts = ""
        if milliseconds < 0 {
            parts = "-"
            milliseconds = -milliseconds
        }
        for unit in units.dropFirst() where milliseconds >= unit.milliseconds {
            parts += "\(milliseconds / unit.milliseconds)\(unit.suffix)"
            milliseconds %= unit.milliseconds
        }
        if milliseconds > 0 { parts += "\(milliseconds)ms" }
        return parts
    }
}

extension Duration {
    /// As fractional milliseconds, for metrics.
    public var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }

    /// Whole seconds as a `TimeInterval`, for `Date` arithmetic.
    public var timeInterval: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
