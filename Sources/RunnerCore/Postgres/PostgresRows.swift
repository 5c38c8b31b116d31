import CLibPQ
import Foundation

/// The rows of one result, copied out of libpq as text so they outlive the `PGresult`.
public struct PostgresRows: Sendable, Sequence {
    public let columns: [String]
    public let values: [[String?]]
    /// Rows changed by an INSERT, UPDATE or DELETE.
    public let affectedRows: Int

    init(_ result: OpaquePointer) {
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
    let columns: [String]
    let values: [String?]

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

    public func date(_ name: String) throws(PostgresError) -> Date? {
        guard let text = try raw(name) else { return nil }
        guard let date = PostgresTimestamp.parse(text) else {
            throw PostgresError(.decoding, "column \"\(name)\": \"\(text)\" is not a UTC timestamptz")
        }
        return date
    }
}
