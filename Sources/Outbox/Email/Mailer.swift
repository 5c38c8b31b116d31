import Foundation
import HTTPClients
import JobTable

/// Why a send failed, judged by what the server may have done with it.
public struct DeliveryError: Error, Sendable, CustomStringConvertible {
    public enum Disposition: String, Sendable {
        /// Not delivered, and the request may not have left (connect errors, SMTP 4xx, HTTP 429
        /// and 5xx): retried with backoff, then left pending for the next run.
        case transient
        /// The server refused it (SMTP 5xx, HTTP 4xx): recorded failed, not retried.
        case permanent
        /// Maybe delivered: the request or the message's content had left when the connection
        /// timed out or broke. Never retried by itself; a person checks and resends.
        case unknown
    }

    public let disposition: Disposition
    public let message: String
    /// How long the provider asked to be left alone (a 429's Retry-After).
    public var retryAfter: Duration?

    public init(_ disposition: Disposition, _ message: String) {
        self.disposition = disposition
        self.message = message
    }

    public var transient: Bool { disposition == .transient }
    public var description: String { message }
}

/// Sends email through one provider.
public protocol Mailer: Sendable {
    /// A short name for logs and outcomes: smtp, sendgrid, resend.
    var provider: String { get }
    /// The sender, whose domain names the Message-ID.
    var from: EmailAddress { get }
    /// How many emails it may send at once (each on a connection of its own).
    var maxConnections: Int { get }
    /// Waits until a send may start (a provider's rate limit, a Retry-After). Called before the
    /// email is leased, so no lease runs out while it waits.
    func ready() async throws
    /// Sends one email. `messageID` (without angle brackets) is unique to this email and
    /// ledger, and also serves as the provider's idempotency key.
    func send(_ email: Email, messageID: String) async throws(DeliveryError)
}

extension Mailer {
    public func ready() async throws {}
}

/// Reads `EMAIL_PROVIDER` and its settings from the environment. No provider: nil, and emails
/// become drafts. A provider named but misconfigured is a configuration error.
public enum MailerConfiguration {
    public struct Problem: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public static func mailer(environment: [String: String], client: CurlClient = CurlClient()) throws(Problem)
        -> Mailer?
    {
        func value(_ name: String) -> String? {
            guard let value = environment[name], !value.isEmpty else { return nil }
            return value
        }
        func required(_ name: String, for provider: String) throws(Problem) -> String {
            guard let found = value(name) else {
                throw Problem(description: "EMAIL_PROVIDER=\(provider) needs \(name) in the environment")
            }
            return found
        }
        func sender(_ text: String, _ name: String) throws(Problem) -> EmailAddress {
            do {
                return try EmailAddress(parsing: text)
            } catch {
                throw Problem(description: "\(name) is not one email address: \(error.reason)")
            }
        }
        guard let provider = value("EMAIL_PROVIDER")?.lowercased() else { return nil }
        var connections = 4
        if let text = value("EMAIL_MAX_CONNECTIONS") {
            guard let number = Int(text), (1...32).contains(number) else {
                throw Problem(description: "EMAIL_MAX_CONNECTIONS=\(text) is not a number of connections (1 to 32)")
            }
            connections = number
        }
        var rate: Double?? = .none
        if let text = value("EMAIL_RATE_LIMIT") {
            // Requests per second; "none" lifts a provider's preset.
            if text.lowercased() == "none" {
                rate = .some(nil)
            } else {
                guard let number = Double(text.hasSuffix("/s") ? String(text.dropLast(2)) : text), number.isFinite,
                    number > 0, number <= 100_000
                else {
                    throw Problem(
                        description: "EMAIL_RATE_LIMIT=\(text) is not a rate in requests per second (like 2/s) or none")
                }
                rate = .some(number)
            }
        }
        switch provider {
        case "smtp":
            let preset = value("SMTP_PRESET").flatMap { SMTPMailer.presets[$0.lowercased()] }
            if let name = value("SMTP_PRESET"), preset == nil {
                throw Problem(
                    description:
                        "SMTP_PRESET=\(name) is not one of \(SMTPMailer.presets.keys.sorted().joined(separator: ", "))")
            }
            guard let host = value("SMTP_HOST") ?? preset?.host else {
                throw Problem(description: "EMAIL_PROVIDER=smtp needs SMTP_HOST (or SMTP_PRESET) in the environment")
            }
            var port = preset?.port ?? 587
            if let text = value("SMTP_PORT") {
                guard let number = Int(text), (1...65535).contains(number) else {
                    throw Problem(description: "SMTP_PORT=\(text) is not a port number (1 to 65535)")
                }
                port = number
            }
            let user = value("SMTP_USER")
            let security: SMTPMailer.Security
            switch value("SMTP_SECURITY")?.lowercased() {
            case "none": security = .none
            case "starttls": security = .startTLS
            case "tls": security = .tls
            // Credentials never travel in clear unless SMTP_SECURITY=none is written out.
            case nil: security = port == 465 ? .tls : (port == 587 || user != nil ? .startTLS : .none)
            case let other?:
                throw Problem(description: "SMTP_SECURITY=\(other) is not one of none, starttls, tls")
            }
            guard let fromText = value("SMTP_FROM") ?? user else {
                throw Problem(description: "EMAIL_PROVIDER=smtp needs SMTP_FROM (or SMTP_USER) in the environment")
            }
            var mailer = SMTPMailer(
                host: host, port: port, security: security, username: user, password: value("SMTP_PASSWORD"),
                from: try sender(fromText, "SMTP_FROM"), client: client, maxConnections: connections)
            mailer.caFile = value("SMTP_CA_FILE")
            return mailer
        case "sendgrid":
            return HTTPMailer.sendGrid(
                apiKey: try required("SENDGRID_API_KEY", for: "sendgrid"),
                from: try sender(try required("SENDGRID_FROM_EMAIL", for: "sendgrid"), "SENDGRID_FROM_EMAIL"),
                baseURL: value("SENDGRID_BASE_URL") ?? "https://api.sendgrid.com", client: client,
                maxConnections: connections, ratePerSecond: rate ?? nil)
        case "resend":
            return HTTPMailer.resend(
                apiKey: try required("RESEND_API_KEY", for: "resend"),
                from: try sender(try required("RESEND_FROM_EMAIL", for: "resend"), "RESEND_FROM_EMAIL"),
                baseURL: value("RESEND_BASE_URL") ?? "https://api.resend.com", client: client,
                maxConnections: connections, ratePerSecond: rate ?? HTTPMailer.resendRate)
        default:
            throw Problem(description: "EMAIL_PROVIDER=\(provider) is not one of smtp, sendgrid, resend")
        }
    }
}
