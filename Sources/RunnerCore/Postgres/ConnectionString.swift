import CLibPQ
import Foundation

/// A libpq connection string (`postgres://…` URL or `key=value` pairs), kept out of sight:
/// only ``redacted`` is ever printed.
public struct ConnectionString: Sendable, CustomStringConvertible {
    public let raw: String

    public init(_ raw: String) {
        self.raw = raw
    }

    /// `user@host:port/dbname`, never the password or other parameters.
    public var redacted: String {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(raw, &errorMessage) else {
            if let errorMessage { PQfreemem(errorMessage) }
            return "(an unparsable connection string)"
        }
        defer { PQconninfoFree(options) }
        var values: [String: String] = [:]
        var cursor = options
        while let keyword = cursor.pointee.keyword {
            if let value = cursor.pointee.val { values[String(cString: keyword)] = String(cString: value) }
            cursor += 1
        }
        let host = values["host"] ?? values["hostaddr"] ?? "localhost"
        let port = values["port"].map { ":\($0)" } ?? ""
        let user = values["user"].map { "\($0)@" } ?? ""
        let database = values["dbname"].map { "/\($0)" } ?? ""
        return "\(user)\(host)\(port)\(database)"
    }

    public var description: String { redacted }

    /// Checks the syntax without connecting. libpq's own parse message can quote a piece of
    /// the string (a password, even), so the error says only what shape is expected.
    public func validate() throws(PostgresError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(raw, &errorMessage) else {
            let detail = errorMessage.map { String(cString: $0) } ?? ""
            if let errorMessage { PQfreemem(errorMessage) }
            throw PostgresError(
                .connection,
                "DATABASE_URL is not a valid connection string: \(Self.problem(in: detail)) "
                    + "(expected postgres://user:password@host:port/dbname?options or key=value pairs)")
        }
        PQconninfoFree(options)
    }

    /// libpq's parse error with every quoted fragment left out: it may quote a piece of the
    /// string, and that piece may be a password.
    static func problem(in message: String) -> String {
        var output = ""
        var inQuote = false
        for character in message.trimmingCharacters(in: .whitespacesAndNewlines) {
            if character == "\"" {
                if !inQuote { output += "\"…\"" }
                inQuote.toggle()
            } else if !inQuote {
                output.append(character)
            }
        }
        return output.isEmpty ? "it does not parse" : output
    }
}

extension ConnectionString {
    /// The same server and settings, another database: re-written as `key='value'` pairs.
    public func replacingDatabase(with database: String) -> ConnectionString {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(raw, &errorMessage) else {
            if let errorMessage { PQfreemem(errorMessage) }
            return self
        }
        defer { PQconninfoFree(options) }
        var pairs: [String] = []
        var cursor = options
        while let keyword = cursor.pointee.keyword {
            let key = String(cString: keyword)
            let value = key == "dbname" ? database : cursor.pointee.val.map { String(cString: $0) }
            if let value {
                let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(
                    of: "'", with: "\\'")
                pairs.append("\(key)='\(escaped)'")
            }
            cursor += 1
        }
        if !pairs.contains(where: { $0.hasPrefix("dbname=") }) { pairs.append("dbname='\(database)'") }
        return ConnectionString(pairs.joined(separator: " "))
    }
}
