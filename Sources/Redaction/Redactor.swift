import Foundation
import PostgresClient
import RunnerSupport

/// Removes the values of secrets from text that leaves the process (logs, effects, outcomes,
/// history): the values of environment variables named `*_KEY`, `*_TOKEN`, `*_PASSWORD`,
/// `*_SECRET`, `*_DSN`, `*_PASS`, `*_PWD`, `*_PAT`, `*_APIKEY`, `*_PASSPHRASE`, `*_CREDENTIALS`,
/// `*_WEBHOOK_URL` (and `PASSWORD`, `TOKEN`, `SECRET`, `APIKEY`, `PGPASSWORD`), passwords in
/// connection strings, in each of the forms they travel in (raw, URL-encoded, JSON-escaped,
/// base64); the userinfo of every URL (`scheme://user:password@`, `https://TOKEN@host`); and the
/// values of secret-looking query keys (`?api_key=`, `&token=`, `sig=`, …).
public struct Redactor: Sendable {
    package static let suffixes = [
        "_KEY", "_TOKEN", "_PASSWORD", "_SECRET", "_DSN", "_PASS", "_PWD", "_PAT", "_APIKEY", "_PASSPHRASE",
        "_CREDENTIALS", "_WEBHOOK_URL",
    ]
    package static let names: Set<String> = ["PASSWORD", "PGPASSWORD", "TOKEN", "SECRET", "APIKEY", "API_KEY", "GITHUB_PAT"]
    /// Query keys whose values are secrets wherever they appear.
    package static let queryKeys = ["api_key", "apikey", "token", "key", "secret", "password", "sig", "signature", "access_token"]
    package static let mask = "[redacted]"
    /// A secret shorter than this is not one (it would mask ordinary words).
    package static let minimumLength = 4

    /// Secret values in every form they travel in, longest first (so a value containing another
    /// is masked whole).
    package let secrets: [String]

    /// Whether `name` holds a secret by its name alone.
    public static func isSecretName(_ name: String) -> Bool {
        let upper = name.uppercased()
        return names.contains(upper) || suffixes.contains(where: upper.hasSuffix)
    }

    /// `also`: further names whose values are secrets (a job's own `env:`, the catalog's secrets).
    public init(environment: [String: String], also: Set<String> = []) {
        var values: Set<String> = []
        func add(_ secret: String) {
            guard secret.count >= Self.minimumLength else { return }
            values.formUnion(Self.forms(of: secret))
        }
        for (name, value) in environment {
            let upper = name.uppercased()
            if Self.isSecretName(upper) || also.contains(name) { add(value) }
            if let password = Self.urlPassword(in: value) {
                add(password)
                // As libpq hands it to a command (PGPASSWORD): percent-decoded.
                if let decoded = password.removingPercentEncoding { add(decoded) }
            }
            // A libpq connection string, URL or `key=value` pairs (`password=…`).
            if upper.hasSuffix("_URL") || upper.hasSuffix("DATABASE"),
                let password = ConnectionString(value).options()?["password"]
            {
                add(password)
            }
        }
        secrets = values.sorted { $0.count > $1.count }
    }

    /// A secret as it appears raw, URL-encoded, JSON-escaped (with and without `\/`) and in
    /// base64 (padded and not).
    package static func forms(of secret: String) -> Set<String> {
        var forms: Set<String> = [secret]
        var unreserved = CharacterSet.alphanumerics
        unreserved.insert(charactersIn: "-._~")
        if let encoded = secret.addingPercentEncoding(withAllowedCharacters: unreserved) { forms.insert(encoded) }
        let json = JSONValue.string(secret).text.dropFirst().dropLast()
        forms.insert(String(json))
        forms.insert(json.replacingOccurrences(of: "/", with: "\\/"))
        let base64 = Data(secret.utf8).base64EncodedString()
        forms.insert(base64)
        forms.insert(String(base64.prefix { $0 != "=" }))
        return forms.filter { $0.count >= minimumLength }
    }

    /// The process's own environment, read once, with the catalog's secrets.
    public static let process = Redactor(
        environment: ProcessInfo.processInfo.environment,
        also: Set(EnvironmentCatalog.all.filter(\.secret).map(\.name)))

    public func callAsFunction(_ text: String) -> String {
        var result = text
        for secret in secrets where result.contains(secret) {
            result = result.replacingOccurrences(of: secret, with: Self.mask)
        }
        return Self.maskQueryValues(Self.maskURLPasswords(result))
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
    package static func urlPassword(in text: String) -> String? {
        guard let scheme = text.range(of: "://") else { return nil }
        let rest = text[scheme.upperBound...]
        guard let at = rest.firstIndex(of: "@") else { return nil }
        let credentials = rest[..<at]
        guard !credentials.contains("/"), let colon = credentials.firstIndex(of: ":") else { return nil }
        let password = credentials[credentials.index(after: colon)...]
        return password.isEmpty ? nil : String(password)
    }

    /// Masks the password of every `://user:password@` in `text`, and a userinfo without one
    /// (`https://TOKEN@host`, where the token is the credential).
    public static func maskURLPasswords(_ text: String) -> String {
        guard text.contains("://") else { return text }
        var output = ""
        var rest = Substring(text)
        while let scheme = rest.range(of: "://") {
            output += rest[..<scheme.upperBound]
            rest = rest[scheme.upperBound...]
            let authority = rest.prefix { $0 != "/" && $0 != " " && $0 != "\"" && $0 != "\n" && $0 != "?" }
            guard let at = authority.lastIndex(of: "@") else { continue }
            let userinfo = authority[..<at]
            if let colon = userinfo.firstIndex(of: ":") {
                guard userinfo.index(after: colon) < at else { continue }
                output += authority[...colon] + mask + authority[at...]
            } else if !userinfo.isEmpty {
                output += mask + authority[at...]
            } else {
                continue
            }
            rest = rest[authority.endIndex...]
        }
        return output + rest
    }

    /// Masks the value of every `?KEY=` or `&KEY=` whose key is one of ``queryKeys``.
    package static func maskQueryValues(_ text: String) -> String {
        guard text.contains("=") else { return text }
        var output = ""
        var rest = Substring(text)
        while let start = rest.firstIndex(where: { $0 == "?" || $0 == "&" }) {
            output += rest[...start]
            rest = rest[rest.index(after: start)...]
            let key = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            guard rest.dropFirst(key.count).first == "=", queryKeys.contains(key.lowercased()) else { continue }
            output += key + "="
            rest = rest.dropFirst(key.count + 1)
            let value = rest.prefix { !($0 == "&" || $0 == "#" || $0 == "\"" || $0 == "'" || $0.isWhitespace) }
            if !value.isEmpty { output += mask }
            rest = rest.dropFirst(value.count)
        }
        return output + rest
    }
}

/// Text and JSON the ledger can always store: Postgres refuses NUL in text and jsonb, and
/// JSON has no NaN; long values are cut at a character boundary.
package enum Storable {
    package static func text(_ text: String, limit: Int) -> String {
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
    package static func json(_ value: JSONValue, stringLimit: Int = 16 << 10) -> JSONValue {
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
    package static func argv(_ argv: [String], limit: Int = 512) -> JSONValue {
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
