/// The set of values one cron field allows, as a bit set over `range`.
package struct CronField: Equatable, Sendable {
    package enum Kind: String, Sendable, CaseIterable {
        case second, minute, hour, dayOfMonth = "day-of-month", month, dayOfWeek = "day-of-week"

        package var range: ClosedRange<Int> {
            switch self {
            case .second, .minute: return 0...59
            case .hour: return 0...23
            case .dayOfMonth: return 1...31
            case .month: return 1...12
            // 7 is accepted as a second name for Sunday and folded into 0.
            case .dayOfWeek: return 0...7
            }
        }

        package var names: [String: Int] {
            switch self {
            case .month:
                return [
                    "JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
                    "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12,
                ]
            case .dayOfWeek:
                return ["SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6]
            default:
                return [:]
            }
        }
    }

    package let kind: Kind
    private(set) var bits: UInt64 = 0
    /// True when the field's text starts with `*` (`*`, `*/5`): Vixie cron then treats
    /// day-of-month and day-of-week as "unrestricted" and ANDs them instead of ORing.
    package let startsWithStar: Bool

    package init(kind: Kind, values: some Sequence<Int>, startsWithStar: Bool = false) {
        self.kind = kind
        self.startsWithStar = startsWithStar
        for value in values { insert(value) }
    }

    /// Parses one field: `*`, `5`, `1-5`, `*/15`, `10-40/10`, `5/15`, `MON-FRI`, lists of these.
    package init(parsing text: String, kind: Kind) throws(CronError) {
        self.kind = kind
        self.startsWithStar = text.hasPrefix("*")
        guard !text.isEmpty else { throw CronError("\(kind.rawValue) field is empty") }
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            try add(part: String(part))
        }
    }

    private mutating func add(part: String) throws(CronError) {
        let field = kind.rawValue
        guard !part.isEmpty else { throw CronError("\(field) field has an empty list item") }
        let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
        guard pieces.count <= 2 else { throw CronError("\(field) field \"\(part)\" has more than one '/'") }
        var step = 1
        if pieces.count == 2 {
            guard let parsed = Int(pieces[1]), parsed >= 1 else {
                throw CronError("\(field) field \"\(part)\": step must be a whole number of at least 1")
            }
            guard parsed <= kind.range.upperBound else {
                throw CronError(
                    "\(field) field \"\(part)\": step \(parsed) is larger than the field's range "
                        + "\(kind.range.lowerBound)-\(kind.range.upperBound)")
            }
            step = parsed
        }
        let base = String(pieces[0])
        let low: Int
        let high: Int
        if base == "*" {
            (low, high) = (kind.range.lowerBound, kind == .dayOfWeek ? 6 : kind.range.upperBound)
        } else if let dash = base.firstIndex(of: "-") {
            low = try value(String(base[..<dash]), in: part)
            high = try value(String(base[base.index(after: dash)...]), in: part)
            guard low <= high else {
                throw CronError("\(field) field \"\(part)\": range start \(low) is after its end \(high)")
            }
        } else {
            low = try value(base, in: part)
            // `5/15` means "from 5 to the end, every 15", as in Vixie cron.
            high = pieces.count == 2 ? kind.range.upperBound : low
        }
        for v in stride(from: low, through: high, by: step) { insert(v) }
    }

    private func value(_ text: String, in part: String) throws(CronError) -> Int {
        let field = kind.rawValue
        if let number = Int(text) {
            guard kind.range.contains(number) else {
                throw CronError(
                    "\(field) field \"\(part)\": \(number) is out of range "
                        + "\(kind.range.lowerBound)-\(kind.range.upperBound)")
            }
            return number
        }
        if let named = kind.names[text.uppercased()] { return named }
        if kind.names.isEmpty {
            throw CronError("\(field) field \"\(part)\": \"\(text)\" is not a number")
        }
        let examples = kind == .month ? "JAN-DEC" : "SUN-SAT"
        throw CronError("\(field) field \"\(part)\": \"\(text)\" is not a number or a name (\(examples))")
    }

    private mutating func insert(_ value: Int) {
        let folded = kind == .dayOfWeek && value == 7 ? 0 : value
        bits |= 1 << UInt64(folded)
    }

    package func contains(_ value: Int) -> Bool {
        value >= 0 && value < 64 && bits & (1 << UInt64(value)) != 0
    }

    /// The smallest allowed value at or above `value`, or nil.
    package func next(atOrAbove value: Int) -> Int? {
        guard value < 64 else { return nil }
        let masked = bits & ~((UInt64(1) << UInt64(max(value, 0))) &- 1)
        return masked == 0 ? nil : masked.trailingZeroBitCount
    }

    package var first: Int? { next(atOrAbove: 0) }
    package var values: [Int] { (0..<64).filter(contains) }
    package var isFull: Bool {
        let upper = kind == .dayOfWeek ? 6 : kind.range.upperBound
        return (kind.range.lowerBound...upper).allSatisfy(contains)
    }
}
