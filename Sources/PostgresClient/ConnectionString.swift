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
        guard let values = options() else { return "(an unparsable connection string)" }
        let host = values["host"] ?? values["hostaddr"] ?? "localhost"
        let port = values["port"].map { ":\($0)" } ?? ""
        let user = values["user"].map { "\($0)@" } ?? ""
        let database = values["dbname"].map { "/\($0)" } ?? ""
        return "\(user)\(host)\(port)\(database)"
    }

    /// The parameters libpq reads from this string (keyword to value, only those set), in the
    /// order libpq lists its keywords; nil when it does not parse.
    package func orderedOptions() -> [(keyword: String, value: String?)]? {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(raw, &errorMessage) else {
            if let errorMessage { PQfreemem(errorMessage) }
            return nil
        }
        defer { PQconninfoFree(options) }
        var result: [(String, String?)] = []
        var cursor = options
        while let keyword = cursor.pointee.keyword {
            result.append((String(cString: keyword), cursor.pointee.val.map { String(cString: $0) }))
            cursor += 1
        }
        return result
    }

    package func options() -> [String: String]? {
        orderedOptions().map { pairs in
            Dictionary(pairs.compactMap { pair in pair.value.map { (pair.keyword, $0) } }) { $1 }
        }
    }

    /// The same connection as libpq's environment variables (`PGHOST`, `PGPORT`, `PGDATABASE`,
    /// `PGUSER`, `PGPASSWORD`, `PGPASSFILE`, `PGSSLMODE`, …), for a command such as `psql`, which
    /// reads those and not `DATABASE_URL`.
    public var libpqEnvironment: [String: String] {
        let names = [
            "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER",
            "password": "PGPASSWORD", "passfile": "PGPASSFILE", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
            "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "channel_binding": "PGCHANNELBINDING",
            "connect_timeout": "PGCONNECT_TIMEOUT", "options": "PGOPTIONS",
            "target_session_attrs": "PGTARGETSESSIONATTRS",
        ]
        var environment: [String: String] = [:]
        for (keyword, value) in options() ?? [:] {
            if let name = names[keyword] { environment[name] = value }
        }
        return environment
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
    package static func problem(in message: String) -> String {
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
        guard let options = orderedOptions() else { return self }
        var pairs: [String] = []
        for (key, value) in options {
            if let value = key == "dbname" ? Optional(database) : value {
                let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(
                    of: "'", with: "\\'")
                pairs.append("\(key)='\(escaped)'")
            }
        }
        if !pairs.contains(where: { $0.hasPrefix("dbname=") }) { pairs.append("dbname='\(database)'") }
        return ConnectionString(pairs.joined(separator: " "))
    }
}
