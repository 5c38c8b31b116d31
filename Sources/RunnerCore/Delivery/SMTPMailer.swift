import CCurl
import Foundation

/// SMTP through libcurl: STARTTLS on 587, TLS on 465, or plain (local relays, tests).
public struct SMTPMailer: Mailer {
    public enum Security: Sendable {
        case none, startTLS, tls
    }

    /// Well-known providers' submission servers.
    public static let presets: [String: (host: String, port: Int)] = [
        "gmail": ("smtp.gmail.com", 587), "outlook": ("smtp-mail.outlook.com", 587),
        "office365": ("smtp.office365.com", 587), "yahoo": ("smtp.mail.yahoo.com", 587),
        "proton": ("smtp.protonmail.ch", 587), "zoho": ("smtp.zoho.com", 587), "icloud": ("smtp.mail.me.com", 587),
    ]

    public let host: String
    public let port: Int
    public let security: Security
    public let username: String?
    public let password: String?
    public let from: String
    let client: CurlClient
    public var provider: String { "smtp" }

    public func send(_ email: Email, messageID: String) async throws(DeliveryError) {
        var transfer = CurlTransfer(url: "\(security == .tls ? "smtps" : "smtp")://\(host):\(port)")
        transfer.mailFrom = "<\(Self.address(from))>"
        transfer.mailRecipients = (email.to + email.cc).map { "<\(Self.address($0))>" }
        transfer.body = email.mime(from: from, messageID: messageID)
        transfer.requireTLS = security == .startTLS
        transfer.username = username
        transfer.password = password
        do {
            _ = try await client.perform(transfer)
        } catch {
            // The server's reply code decides: 4xx (and no reply at all) may pass; 5xx will not.
            let code = error.responseCode
            let transient = code == 0 || (400..<500).contains(code)
            throw DeliveryError(
                transient: transient, "SMTP \(host):\(port): \(error.message)\(code > 0 ? " (\(code))" : "")")
        }
    }

    /// `Name <a@b.c>` → `a@b.c`.
    static func address(_ mailbox: String) -> String {
        if let open = mailbox.lastIndex(of: "<"), let close = mailbox.lastIndex(of: ">"), open < close {
            return String(mailbox[mailbox.index(after: open)..<close])
        }
        return mailbox.trimmingCharacters(in: .whitespaces)
    }
}

/// SendGrid and Resend: JSON over HTTPS with a bearer key.
public struct HTTPMailer: Mailer {
    public let provider: String
    let endpoint: String
    let apiKey: String
    let body: @Sendable (Email, String) -> JSONValue
    let client: CurlClient

    static func sendGrid(apiKey: String, from: String, baseURL: String, client: CurlClient) -> HTTPMailer {
        HTTPMailer(
            provider: "sendgrid", endpoint: baseURL + "/v3/mail/send", apiKey: apiKey,
            body: { email, messageID in
                var personalization: [String: JSONValue] = ["to": .array(email.to.map { ["email": .string($0)] })]
                if !email.cc.isEmpty { personalization["cc"] = .array(email.cc.map { ["email": .string($0)] }) }
                return [
                    "personalizations": [.object(personalization)], "from": ["email": .string(from)],
                    "subject": .string(email.subject),
                    "content": [
                        ["type": "text/plain", "value": .string(email.text)],
                        ["type": "text/html", "value": .string(email.html)],
                    ],
                    "headers": ["Message-ID": .string("<\(messageID)>")],
                ]
            }, client: client)
    }

    static func resend(apiKey: String, from: String, baseURL: String, client: CurlClient) -> HTTPMailer {
        HTTPMailer(
            provider: "resend", endpoint: baseURL + "/emails", apiKey: apiKey,
            body: { email, messageID in
                var body: [String: JSONValue] = [
                    "from": .string(from), "to": .array(email.to.map(JSONValue.string)),
                    "subject": .string(email.subject),
                    "text": .string(email.text), "html": .string(email.html),
                    "headers": ["Message-ID": .string("<\(messageID)>")],
                ]
                if !email.cc.isEmpty { body["cc"] = .array(email.cc.map(JSONValue.string)) }
                return .object(body)
            }, client: client)
    }

    public func send(_ email: Email, messageID: String) async throws(DeliveryError) {
        var transfer = CurlTransfer(url: endpoint)
        transfer.method = "POST"
        transfer.headers = ["Authorization: Bearer \(apiKey)", "Content-Type: application/json"]
        if provider == "resend" {
            // Resend answers a repeated key (24 hours) without sending again: a retry after a lost
            // reply cannot duplicate the email.
            transfer.headers.append("Idempotency-Key: \(messageID)")
        }
        transfer.body = Data(body(email, messageID).text.utf8)
        let response: CurlTransfer.Response
        do {
            response = try await client.perform(transfer)
        } catch {
            throw DeliveryError(transient: true, "\(provider): \(error.message)")
        }
        guard (200..<300).contains(response.status) else {
            let detail = String(decoding: response.body.prefix(300), as: UTF8.self)
            let transient = response.status == 429 || response.status >= 500
            throw DeliveryError(transient: transient, "\(provider) answered HTTP \(response.status): \(detail)")
        }
    }
}
