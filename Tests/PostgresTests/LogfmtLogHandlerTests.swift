import Testing

@testable import Engine
@testable import RunnerSupport
@testable import Redaction
import TestSupport

@Suite("Log lines")
struct LogfmtLogHandlerTests {
    @Test(
        "JSON logs carry counts, ids and measures as numbers, and everything else as strings",
        arguments: [
            ("run_id", "42", JSONValue.number(42)), ("duration_ms", "12", .number(12)),
            ("clock_skew_ms", "-3.5", .number(-3.5)), ("attempt", "2", .number(2)),
            ("http_status", "503", .number(503)),
            // A key keeps one type: a name that looks like a number stays a string.
            ("job", "123", .string("123")), ("slot", "2026-01-01T00:00:00Z", .string("2026-01-01T00:00:00Z")),
            // Only plain decimals become numbers: no NaN, infinities, hex or exponents.
            ("duration_ms", "inf", .string("inf")), ("duration_ms", "nan", .string("nan")),
            ("run_id", "0x10", .string("0x10")), ("run_id", "1e999", .string("1e999")),
            ("run_id", "", .string("")),
        ])
    func jsonTypes(key: String, value: String, expected: JSONValue) {
        #expect(LogfmtLogHandler.jsonValue(key: key, value) == expected)
    }
}
