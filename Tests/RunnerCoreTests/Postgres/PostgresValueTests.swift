import Foundation
import Testing

@testable import RunnerCore

@Suite("PostgreSQL values")
struct PostgresValueTests {
    @Test("a text array reaches the server element for element, whatever the elements hold")
    func arrayRoundTrip() async throws {
        let (_, connection) = try await TestDatabase.migrated("values")
        let elements: [String?] = [
            "plain", "", "NULL", nil, #"say "hi""#, #"back\slash"#, #"\""#, #"ends with \"#, "a,b", "{braces}",
            " padded ", "line\nbreak\ttab", "é\"ü\\日本 ✓", String(repeating: "x\"", count: 500),
        ]
        let rows = try await connection.query(
            "SELECT element, ordinality FROM unnest($1::text[]) WITH ORDINALITY AS u(element, ordinality) ORDER BY ordinality",
            [.array(elements)])
        #expect(rows.count == elements.count)
        for (row, expected) in zip(rows, elements) { #expect(try row.string("element") == expected) }
        await connection.close()
    }
}
