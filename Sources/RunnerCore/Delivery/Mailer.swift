import Foundation

/// Why a send failed, and whether trying again later may help.
public struct DeliveryError: Error, Sendable, CustomStringConvertible {
    /// Connect errors, SMTP 4xx, HTTP 429 and 5xx: retried with backoff, then left pending.
    public let transient: Bool
    public let message: String

    public init(transient: Bool, _ message: String) {
        self.transient = transient
        self.message = message
    }

    public var description: String { message }
}

/// Sends email through one provider.
public protocol Mailer: Sendable {
    /// A short name for logs and outcomes: smtp, sendgrid, resend.
    var provider: String { get }
    func send(_ email: Email, messageID: String) async throws(DeliveryError)
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
        guard let provider = value("EMAIL_PROVIDER")?.lowercased() else { return nil }
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
            let port = Int(value("SMTP_PORT") ?? "") ?? preset?.port ?? 587
            let security: SMTPMailer.Security
            switch value("SMTP_SECURITY")?.lowercased() {
            case "none": security = .none
            case "starttls": security = .startTLS
            case "tls": security = .tls
            case nil: security = port == 465 ? .tls : (port == 587 ? .startTLS : .none)
            case let other?:
                throw Problem(description: "SMTP_SECURITY=\(other) is not one of none, starttls, tls")
            }
            let user = value("SMTP_USER")
            guard let from = value("SMTP_FROM") ?? user else {
                throw Problem(description: "EMAIL_PROVIDER=smtp needs SMTP_FROM (or SMTP_USER) in the environment")
            }
            return SMTPMailer(
                host: host, port: port, security: security, username: user, password: value("SMTP_PASSWORD"),
                from: from, client: client)
        case "sendgrid":
            return HTTPMailer.sendGrid(
                apiKey: try required("SENDGRID_API_KEY", for: "sendgrid"),
                from: try required("SENDGRID_FROM_EMAIL", for: "sendgrid"),
                baseURL: value("SENDGRID_BASE_URL") ?? "https://api.sendgrid.com", client: client)
        case "resend":
            return HTTPMailer.resend(
                apiKey: try required("RESEND_API_KEY", for: "resend"),
                from: try required("RESEND_FROM_EMAIL", for: "resend"),
                baseURL: value("RESEND_BASE_URL") ?? "https://api.resend.com", client: client)
        default:
            throw Problem(description: "EMAIL_PROVIDER=\(provider) is not one of smtp, sendgrid, resend")
        }
    }
}
