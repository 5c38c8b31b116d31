import Foundation

/// Removes the values of secrets from text that leaves the process (logs, effects, outcomes,
/// history): the values of environment variables named `*_KEY`, `*_TOKEN`, `*_PASSWORD`,
/// `*_SECRET` or `*_DSN` (and `PASSWORD`, `DATABASE_URL`'s password), and any password written
/// inside a URL (`scheme://user:password@host`).
public struct Redactor: Sendable {
    static let suffixes = ["_KEY", "_TOKEN", "_PASSWORD", "_SECRET", "_DSN", "_PASS", "_PWD"]
    static let mask = "[redacted]"

    /// Secret values, longest first (so a value containing another is masked whole).
    let secrets: [String]

    public init(environment: [String: String]) {
        var values: Set<String> = []
        for (name, value) in environment {
            let upper = name.uppercased()
            if Self.suffixes.contains(where: upper.hasSuffix) || upper == "PASSWORD" || upper == "PGPASSWORD" {
                // A value this short would mask ordinary words ("postgres" in every URL); such a
                // secret is no secret.
                if value.count >= 8 { values.insert(value) }
            }
            if let password = Self.urlPassword(in: value), password.count >= 8 {
                values.insert(password)
                // As libpq hands it to a command (PGPASSWORD): percent-decoded.
                if let decoded = password.removingPercentEncoding, decoded.count >= 8 { values.insert(decoded) }
            }
            // A libpq connection string, URL or `key=value` pairs (`password=…`).
            if upper.hasSuffix("_URL") || upper.hasSuffix("DATABASE"),
                let password = ConnectionString(value).options()?["password"], password.count >= 8
            {
                values.insert(password)
            }
        }
        secrets = values.sorted { $0.count > $1.count }
    }

    /// The process's own environment, read once.
    public static let process = Redactor(environment: ProcessInfo.processInfo.environment)

    public func callAsFunction(_ text: String) -> String {
        var result = text
        for secret in secrets where result.contains(secret) {
            result = result.replacingOccurrences(of: secret, with: Self.mask)
        }
        return Self.maskURLPasswords(result)
    }

    /// Every string inside a JSON value, redacted.
    public func callAsFunction(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let text): return .string(self(text))
        case .array(let items): return .array(items.map { self($0) })
        case .object(let fields): return .object(fields.mapValues { self($0) })
        default: return value
        }
    }

    /// `scheme://user:password@…` → the password.
    static func urlPassword(in text: String) -> String? {
        guard let scheme = text.range(of: "://") else { return nil }
        let rest = text[scheme.upperBound...]
        guard let at = rest.firstIndex(of: "@") else { return nil }
        let credentials = rest[..<at]
        guard !credentials.contains("/"), let colon = credentials.firstIndex(of: ":") else { return nil }
        let password = credentials[credentials.index(after: colon)...]
        return password.isEmpty ? nil : String(password)
    }

    /// Masks the password of every `://user:password@` in `text`.
    public static func maskURLPasswords(_ text: String) -> String {
        guard text.contains("://") else { return text }
        var output = ""
        var rest = Substring(text)
        while let scheme = rest.range(of: "://") {
            output += rest[..<scheme.upperBound]
            rest = rest[scheme.upperBound...]
            let authority = rest.prefix { $0 != "/" && $0 != " " && $0 != "\"" && $0 != "\n" }
            if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":"),
                authority.index(after: colon) < at
            {
                output += authority[...colon] + mask + authority[at...]
                rest = rest[authority.endIndex...]
            }
        }
        return output + rest
    }
}

/// Text and JSON the ledger can always store: Postgres refuses NUL in text and jsonb, and
/// JSON has no NaN; long values are cut at a character boundary.
enum Storable {
    static func text(_ text: String, limit: Int) -> String {
        // By scalar: a NUL followed by a combining mark is one Character, which a Character
        // search would not find.
        var clean = text
        if text.unicodeScalars.contains("\u{0}") {
            var scalars = String.UnicodeScalarView()
            for scalar in text.unicodeScalars {
                if scalar == "\u{0}" {
                    scalars.append(contentsOf: "\\0".unicodeScalars)
                } else {
                    scalars.append(scalar)
                }
            }
            clean = String(scalars)
        }
        if clean.utf8.count > limit {
            var cut = ""
            for character in clean {
                if cut.utf8.count + character.utf8.count > limit - 3 { break }
                cut.append(character)
            }
            clean = cut + "…"
        }
        return clean
    }

    /// Strings storable and at most `stringLimit` bytes each; non-finite numbers become null.
    static func json(_ value: JSONValue, stringLimit: Int = 16 << 10) -> JSONValue {
        switch value {
        case .string(let text): return .string(Storable.text(text, limit: stringLimit))
        case .number(let number): return number.isFinite ? value : .null
        case .array(let items): return .array(items.map { json($0, stringLimit: stringLimit) })
        case .object(let fields):
            return .object(
                Dictionary(
                    fields.map { (Storable.text($0.key, limit: 256), json($0.value, stringLimit: stringLimit)) },
                    uniquingKeysWith: { first, _ in first }))
        default: return value
        }
    }

    /// An argv for an outcome: at most `limit` bytes in all, each argument cut to fit.
    static func argv(_ argv: [String], limit: Int = 512) -> JSONValue {
        var budget = limit
        var items: [JSONValue] = []
        for argument in argv {
            guard budget > 0 else {
                items.append(.string("… \(argv.count - items.count) more"))
                break
            }
            let cut = text(argument, limit: max(4, budget))
            budget -= cut.utf8.count
            items.append(.string(cut))
        }
        return .array(items)
    }
}
