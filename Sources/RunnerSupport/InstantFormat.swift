import Foundation

/// ISO-8601 instants as `runner next` and `runner history` print and read them.
public enum InstantFormat {
    /// `2026-03-29T03:00:00+02:00`: the local time in `zone`, with its UTC offset.
    public static func string(_ date: Date, in zone: TimeZone) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let offset = zone.secondsFromGMT(for: date)
        let wall = CivilTime(wallSeconds: seconds + Int64(offset))
        let sign = offset < 0 ? "-" : "+"
        let magnitude = abs(offset)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d%@%02d:%02d", wall.year, wall.month, wall.day, wall.hour,
            wall.minute, wall.second, sign, magnitude / 3600, magnitude / 60 % 60)
    }

    /// Reads `2026-03-29T01:00:00Z`, `2026-03-29T03:00:00+02:00`, with optional fractional seconds.
    public static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[range] {
                guard (48...57).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            return value
        }
        func byte(_ index: Int, is character: Character) -> Bool {
            index < bytes.count && bytes[index] == character.asciiValue!
        }
        guard let year = number(0..<4), byte(4, is: "-"), let month = number(5..<7), byte(7, is: "-"),
            let day = number(8..<10), byte(10, is: "T") || byte(10, is: "t") || byte(10, is: " "),
            let hour = number(11..<13), byte(13, is: ":"), let minute = number(14..<16), byte(16, is: ":"),
            let second = number(17..<19),
            (1...12).contains(month), day >= 1, day <= CivilTime.daysInMonth(year: year, month: month), hour < 24,
            minute < 60, second < 60
        else { return nil }
        var index = 19
        var fraction = 0.0
        if byte(index, is: ".") {
            var scale = 0.1
            index += 1
            let start = index
            while index < bytes.count, (48...57).contains(bytes[index]) {
                fraction += Double(bytes[index] - 48) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        var offset = 0
        if byte(index, is: "Z") || byte(index, is: "z") {
            index += 1
        } else if byte(index, is: "+") || byte(index, is: "-"), let hours = number(index + 1..<index + 3),
            byte(index + 3, is: ":"), let minutes = number(index + 4..<index + 6), hours < 24, minutes < 60
        {
            offset = (hours * 3600 + minutes * 60) * (byte(index, is: "-") ? -1 : 1)
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        let wall = CivilTime(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
        return Date(timeIntervalSince1970: Double(wall.wallSeconds - Int64(offset)) + fraction)
    }
}
