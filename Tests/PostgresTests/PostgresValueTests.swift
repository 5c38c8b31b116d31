import Foundation
import Testing

@testable import Engine
@testable import PostgresClient
import TestSupport

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

    @Test("an array read back from the server is the array sent, and odd arrays decode or fail clearly")
    func arrayRead() async throws {
        let (_, connection) = try await TestDatabase.migrated("arrays")
        let elements: [String?] = [
            "plain", "", "NULL", "null", nil, #"say "hi""#, #"back\slash"#, "a,b", "{braces}", " padded ", "é ✓ 日本",
        ]
        let row = try #require(
            try await connection.query(
                """
                SELECT $1::text[] AS sent, '{}'::text[] AS empty, '[0:1]={x,y}'::text[] AS shifted,
                       '{{a,b},{c,d}}'::text[] AS square, NULL::text[] AS missing
                """, [.array(elements)]
            ).first)
        #expect(try row.stringArray("sent") == elements)
        #expect(try row.stringArray("empty") == [])
        #expect(try row.stringArray("shifted") == ["x", "y"])
        #expect(try row.stringArray("missing") == nil)
        #expect(throws: PostgresError.self) { try row.stringArray("square") }
        await connection.close()
    }
}
