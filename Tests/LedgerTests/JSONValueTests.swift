import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
import TestSupport

@Suite("JSON values")
struct JSONValueTests {
    @Test("written JSON reads back as the same value, keys sorted")
    func roundTrip() throws {
        let value: JSONValue = [
            "quote\"back\\slash": "line\nbreak\ttab\r\u{01}\u{1F}",
            "unicode": "CRITICAL — Immediate Action Required ✓ 日本",
            "unicode escaped": "é\"ü\\日本\n✓\"",
            "numbers": [0, -3, 1.5, 1e20, 42],
            "nested": ["a": [true, false, .null], "b": [:], "c": []],
        ]
        let text = value.text
        #expect(JSONValue.parse(text) == value)
        #expect(text.hasPrefix(#"{"nested":{"a":[true,false,null],"b":{},"c":[]},"numbers":[0,-3,1.5,1e+20,42]"#))
        #expect(text.contains(#""quote\"back\\slash":"line\nbreak\ttab\r\u0001\u001f""#))
        #expect(text.hasSuffix(#""unicode escaped":"é\"ü\\日本\n✓\""}"#))
        // Foundation's own parser agrees.
        let foundation = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect(foundation?["unicode"] as? String == "CRITICAL — Immediate Action Required ✓ 日本")
    }
}
