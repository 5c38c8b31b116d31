import CLibPQ
import Foundation

/// The rows of one result, copied out of libpq as text so they outlive the `PGresult`.
public struct PostgresRows: Sendable, Sequence {
    public let columns: [String]
    public let values: [[String?]]
    /// Rows changed by an INSERT, UPDATE or DELETE.
    public let affectedRows: Int

    package init(_ result: OpaquePointer) {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        values = (0..<rowCount).map { row in
            (0..<columnCount).map { column in
                PQgetisnull(result, Int32(row), Int32(column)) == 1
                    ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
            }
        }
        affectedRows = Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    private init(columns: [String], values: [[String?]], affectedRows: Int) {
        self.columns = columns
        self.values = values
        self.affectedRows = affectedRows
    }

    /// The rows in pages of at most `size`.
    package func pages(of size: Int) -> [PostgresRows] {
        let size = Swift.max(1, size)
        return stride(from: 0, to: values.count, by: size).map {
            PostgresRows(
                columns: columns, values: Array(values[$0..<Swift.min($0 + size, values.count)]), affectedRows: 0)
        }
    }

    public var count: Int { values.count }
    public var first: PostgresRow? { values.isEmpty ? nil : PostgresRow(columns: columns, values: values[0]) }

    public func makeIterator() -> AnyIterator<PostgresRow> {
        var index = 0
        return AnyIterator {
            guard index < values.count else { return nil }
            defer { index += 1 }
            return PostgresRow(columns: columns, values: values[index])
        }
    }
}

/// One row; columns are read by name and decoded from Postgres's text format.
public struct PostgresRow: Sendable {
    package let columns: [String]
    package let values: [String?]

    private func raw(_ name: String) throws(PostgresError) -> String? {
        guard let index = columns.firstIndex(of: name) else {
            throw PostgresError(.decoding, "no column \"\(name)\" in the result (\(columns.joined(separator: ", ")))")
        }
        return values[index]
    }

    public func string(_ name: String) throws(PostgresError) -> String? { try raw(name) }

    public func string(_ name: String, default fallback: String) throws(PostgresError) -> String {
        try raw(name) ?? fallback
    }

    public func int(_ name: String) throws(PostgresError) -> Int? {
        guard let text = try raw(name) else { return nil }
        guard let value = Int(text) else {
            throw PostgresError(.decoding, "column \"\(name)\": \"\(text)\" is not an integer")
        }
        return value
    }

    public func int64(_ name: String) throws(PostgresError) -> Int64? {
        try int(name).map(Int64.init)
    }

    public func double(_ name: String) throws(PostgresError) -> Double? {
        guard let text = try raw(name) else { return nil }
        guard let value = Double(text) else {
            throw PostgresError(.decoding, "column \"\(name)\": \"\(text)\" is not a number")
        }
        return value
    }

    public func bool(_ name: String) throws(PostgresError) -> Bool? {
        guard let text = try raw(name) else { return nil }
        return text == "t" || text == "true"
    }

    /// A one-dimensional array (`text[]`, or any array read as text), NULL elements as nil.
    public func stringArray(_ name: String) throws(PostgresError) -> [String?]? {
        guard let text = try raw(name) else { return nil }
        guard let elements = PostgresArrayLiteral.parse(text) else {
            throw PostgresError(.decoding, "column \"\(name)\": not a one-dimensional array")
        }
        return elements
    }

    public func date(_ name: String) throws(PostgresError) -> Date? {
        guard let text = try raw(name) else { return nil }
        guard let date = PostgresTimestamp.parse(text) else {
            throw PostgresError(.decoding, "column \"\(name)\": \"\(text)\" is not a UTC timestamptz")
        }
        return date
    }
}

/// Postgres's text output of a one-dimensional array: `{a,"b c",NULL,"say \"hi\""}`, with a
/// `[lower:upper]=` prefix when the lower bound is not 1. Elements are quoted when they hold
/// a special character or are empty, inside quotes `\` escapes the next byte, and an unquoted
/// NULL is a null element.
package enum PostgresArrayLiteral {
    package static func parse(_ text: String) -> [String?]? {
        let all = Array(text.utf8)
        var start = all.startIndex
        if all.first == UInt8(ascii: "[") {
            guard let equals = all.firstIndex(of: UInt8(ascii: "=")) else { return nil }
            start = equals + 1
        }
        guard all.count - start >= 2, all[start] == UInt8(ascii: "{"), all.last == UInt8(ascii: "}") else { return nil }
        let bytes = all[(start + 1)..<(all.count - 1)]
        var elements: [String?] = []
        var index = bytes.startIndex
        guard index < bytes.endIndex else { return [] }
        while true {
            if bytes[index] == UInt8(ascii: "\"") {
                var element: [UInt8] = []
                index += 1
                while index < bytes.endIndex && bytes[index] != UInt8(ascii: "\"") {
                    if bytes[index] == UInt8(ascii: "\\") { index += 1 }
                    guard index < bytes.endIndex else { return nil }
                    element.append(bytes[index])
                    index += 1
                }
                guard index < bytes.endIndex else { return nil }
                index += 1
                elements.append(String(decoding: element, as: UTF8.self))
            } else {
                let first = index
                while index < bytes.endIndex && bytes[index] != UInt8(ascii: ",") {
                    // A nested brace: more than one dimension.
                    if bytes[index] == UInt8(ascii: "{") || bytes[index] == UInt8(ascii: "}") { return nil }
                    index += 1
                }
                let element = bytes[first..<index]
                elements.append(element.elementsEqual("NULL".utf8) ? nil : String(decoding: element, as: UTF8.self))
            }
            guard index < bytes.endIndex else { return elements }
            guard bytes[index] == UInt8(ascii: ",") else { return nil }
            index += 1
        }
    }
}
