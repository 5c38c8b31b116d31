import Foundation
import RunnerSupport

/// A query parameter, sent in Postgres's text format. SQL casts (`$1::bigint`) give it a type.
public struct PostgresValue: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral
{
    public let text: String?

    public init(_ text: String?) {
        self.text = text
    }

    public init(stringLiteral value: String) { text = value }
    public init(integerLiteral value: Int) { text = String(value) }
    public init(nilLiteral: ()) { text = nil }

    public static func int(_ value: Int?) -> PostgresValue { PostgresValue(value.map(String.init)) }
    public static func int64(_ value: Int64?) -> PostgresValue { PostgresValue(value.map(String.init)) }
    public static func double(_ value: Double?) -> PostgresValue { PostgresValue(value.map { String($0) }) }
    public static func bool(_ value: Bool) -> PostgresValue { PostgresValue(value ? "true" : "false") }

    /// A `timestamptz` parameter, exact to the microsecond.
    public static func timestamp(_ date: Date?) -> PostgresValue {
        PostgresValue(date.map { PostgresTimestamp.format($0) })
    }

    /// A `timestamptz[]` parameter, each exact to the microsecond.
    public static func timestamps(_ dates: [Date]) -> PostgresValue {
        .array(dates.map { PostgresTimestamp.format($0) })
    }

    /// An interval of whole milliseconds, for `$1::interval`.
    public static func interval(_ duration: Duration) -> PostgresValue {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return PostgresValue("\(milliseconds) milliseconds")
    }

    /// A JSON value for `$1::jsonb`.
    public static func json(_ object: some Encodable) -> PostgresValue {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return PostgresValue((try? encoder.encode(object)).map { String(decoding: $0, as: UTF8.self) })
    }

    /// A one-dimensional array literal (`{"a","b"}`) for `$1::text[]`, `$1::float8[]` and the like.
    /// Built as bytes: a large run passes arrays of a hundred thousand email payloads.
    public static func array(_ elements: [String?]) -> PostgresValue {
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(elements.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
        for (index, element) in elements.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            guard var element else {
                bytes.append(contentsOf: "NULL".utf8)
                continue
            }
            bytes.append(UInt8(ascii: "\""))
            // Runs without a quote or backslash are copied whole.
            element.withUTF8 { utf8 in
                var plain = 0
                for (offset, byte) in utf8.enumerated() where byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                    bytes.append(contentsOf: utf8[plain..<offset])
                    bytes.append(UInt8(ascii: "\\"))
                    plain = offset
                }
                bytes.append(contentsOf: utf8[plain...])
            }
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
        return PostgresValue(String(decoding: bytes, as: UTF8.self))
    }
}

/// Reads and writes `timestamptz` text in a UTC session (`2026-11-22 04:16:14.123456+00`).
package enum PostgresTimestamp {
    package static func format(_ date: Date) -> String {
        let microseconds = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        let seconds = CivilTime.floorDivide(microseconds, 1_000_000)
        let fraction = microseconds - seconds * 1_000_000
        let wall = CivilTime(wallSeconds: seconds)
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", wall.year, wall.month, wall.day, wall.hour, wall.minute,
            wall.second, fraction)
    }

    package static func parse(_ text: String) -> Date? {
        // "YYYY-MM-DD HH:MM:SS[.ffffff]+00" (the session is UTC); reuse the ISO-8601 reader.
        var iso = text.replacingOccurrences(of: " ", with: "T")
        if let plus = iso.lastIndex(where: { $0 == "+" || $0 == "-" }), plus > iso.index(iso.startIndex, offsetBy: 18) {
            let offset = iso[iso.index(after: plus)...]
            if offset.count == 2 { iso += ":00" }
        }
        return InstantFormat.parse(iso)
    }
}
