import CCurl
import Foundation
import HTTPClients
import JobTable
import RunnerSupport

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
    public let from: EmailAddress
    /// `EMAIL_MAX_CONNECTIONS` clients, each keeping its SMTP session open across messages.
    package let clients: CurlPool
    /// The whole submission, connect to the final reply.
    package var timeout: Duration = .seconds(30)
    /// `SMTP_CA_FILE`: the CA certificates to trust for this server instead of the system's.
    package var caFile: String?
    public var provider: String { "smtp" }

    public init(
        host: String, port: Int, security: Security, username: String?, password: String?, from: EmailAddress,
        client: CurlClient, timeout: Duration = .seconds(30), maxConnections: Int = 1
    ) {
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.from = from
        self.clients = CurlPool(first: client, size: maxConnections)
        self.timeout = timeout
    }

    public var maxConnections: Int { clients.size }

    /// Set when credentials would travel without TLS because `SMTP_SECURITY=none` says so: each
    /// run logs it.
    public var insecureCredentials: String? {
        guard security == .none, username != nil else { return nil }
        return "SMTP_SECURITY=none: the SMTP password to \(host):\(port) is sent without TLS"
    }

    public func send(_ email: Email, messageID: String) async throws(DeliveryError) {
        var transfer = CurlTransfer(url: "\(security == .tls ? "smtps" : "smtp")://\(host):\(port)")
        // Envelope addresses come only from parsed mailboxes: no CR, LF or `>` can reach a command.
        transfer.mailFrom = "<\(from.address)>"
        transfer.mailRecipients = (email.to + email.cc).map { "<\($0.address)>" }
        transfer.body = email.mime(from: from, messageID: messageID)
        transfer.requireTLS = security == .startTLS
        transfer.username = username
        transfer.password = password
        transfer.timeout = timeout
        transfer.caFile = caFile
        do {
            _ = try await clients.perform(transfer)
        } catch {
            throw DeliveryError(
                Self.disposition(of: error),
                "SMTP \(host):\(port): \(error.message)\(error.responseCode >= 400 ? " (\(error.responseCode))" : "")")
        }
    }

    /// A refusal decides by its reply code (4xx may pass later, 5xx will not). Without one, it
    /// depends on whether the message's content had started to leave: before, nothing was
    /// delivered; after (a timeout or a reset waiting for the final reply), it may have been.
    package static func disposition(of failure: CurlTransfer.Failure) -> DeliveryError.Disposition {
        if failure.responseCode >= 500 { return .permanent }
        if failure.responseCode >= 400 { return .transient }
        return failure.requestSent ? .unknown : .transient
    }
}

/// SendGrid and Resend: JSON over HTTPS with a bearer key.
public struct HTTPMailer: Mailer {
    public let provider: String
    public let from: EmailAddress
    package let endpoint: String
    package let apiKey: String
    package let body: @Sendable (Email, EmailAddress, String) -> JSONValue
    package let clients: CurlPool
    package var timeout: Duration = .seconds(30)
    /// Spaces requests to the provider's rate limit and holds them after a 429's Retry-After.
    package let limiter: RateLimiter

    public var maxConnections: Int { clients.size }

    package init(
        provider: String, from: EmailAddress, endpoint: String, apiKey: String,
        body: @escaping @Sendable (Email, EmailAddress, String) -> JSONValue, client: CurlClient,
        maxConnections: Int = 1, ratePerSecond: Double? = nil
    ) {
        self.provider = provider
        self.from = from
        self.endpoint = endpoint
        self.apiKey = apiKey
        self.body = body
        self.clients = CurlPool(first: client, size: maxConnections)
        self.limiter = RateLimiter(perSecond: ratePerSecond)
    }

    package static func sendGrid(
        apiKey: String, from: EmailAddress, baseURL: String, client: CurlClient, maxConnections: Int = 1,
        ratePerSecond: Double? = nil
    ) -> HTTPMailer {
        HTTPMailer(
            provider: "sendgrid", from: from, endpoint: baseURL + "/v3/mail/send", apiKey: apiKey,
            body: { email, from, messageID in
                var personalization: [String: JSONValue] = ["to": .array(email.to.map(Self.sendGridAddress))]
                if !email.cc.isEmpty { personalization["cc"] = .array(email.cc.map(Self.sendGridAddress)) }
                return [
                    "personalizations": [.object(personalization)], "from": Self.sendGridAddress(from),
                    "subject": .string(MIMEHeader.singleLine(email.subject)),
                    "content": [
                        ["type": "text/plain", "value": .string(email.text)],
                        ["type": "text/html", "value": .string(email.html)],
                    ],
                    "headers": ["Message-ID": .string("<\(messageID)>")],
                ]
            }, client: client, maxConnections: maxConnections, ratePerSecond: ratePerSecond)
    }

    package static func sendGridAddress(_ address: EmailAddress) -> JSONValue {
        guard let name = address.displayName else { return ["email": .string(address.address)] }
        return ["email": .string(address.address), "name": .string(name)]
    }

    /// Resend's documented default limit is 2 requests per second per team.
    package static let resendRate = 2.0

    package static func resend(
        apiKey: String, from: EmailAddress, baseURL: String, client: CurlClient, maxConnections: Int = 1,
        ratePerSecond: Double? = resendRate
    ) -> HTTPMailer {
        HTTPMailer(
            provider: "resend", from: from, endpoint: baseURL + "/emails", apiKey: apiKey,
            body: { email, from, messageID in
                var body: [String: JSONValue] = [
                    "from": .string(from.description), "to": .array(email.to.map { .string($0.description) }),
                    "subject": .string(MIMEHeader.singleLine(email.subject)),
                    "text": .string(email.text), "html": .string(email.html),
                    "headers": ["Message-ID": .string("<\(messageID)>")],
                ]
                if !email.cc.isEmpty { body["cc"] = .array(email.cc.map { .string($0.description) }) }
                return .object(body)
            }, client: client, maxConnections: maxConnections, ratePerSecond: ratePerSecond)
    }

    /// Spaces sends to the rate limit; a 429's Retry-After holds every sender.
    public func ready() async throws {
        try await limiter.wait()
    }

    /// Whether the provider answers a repeated idempotency key without sending again.
    package var deduplicatesRequests: Bool { provider == "resend" }

    public func send(_ email: Email, messageID: String) async throws(DeliveryError) {
        var transfer = CurlTransfer(url: endpoint)
        transfer.method = "POST"
        // Resend answers a repeated key (for 24 hours) without sending again, so a retry after a
        // lost reply cannot duplicate the email; the key names this ledger, so two ledgers on one
        // account never collide.
        // The key is the Message-ID's part before the domain: effect and ledger, nothing that
        // a change of sender could move.
        let idempotencyKey = messageID.split(separator: "@").first.map(String.init) ?? messageID
        transfer.headers = [
            "Authorization: Bearer \(apiKey)", "Content-Type: application/json", "Idempotency-Key: \(idempotencyKey)",
        ]
        transfer.body = Data(body(email, from, messageID).text.utf8)
        transfer.timeout = timeout
        let response: CurlTransfer.Response
        do {
            response = try await clients.perform(transfer)
        } catch {
            // Resend keeps an idempotency key for 24 hours, so repeating a request whose answer
            // was lost cannot send twice; SendGrid keeps none, so its lost answers are unknown.
            let disposition: DeliveryError.Disposition =
                error.requestSent && !deduplicatesRequests ? .unknown : .transient
            throw DeliveryError(disposition, "\(provider): \(error.message)")
        }
        guard (200..<300).contains(response.status) else {
            let detail = displayEscaped(String(decoding: response.body.prefix(300), as: UTF8.self))
            let disposition: DeliveryError.Disposition =
                response.status == 429 || response.status >= 500 ? .transient : .permanent
            var error = DeliveryError(disposition, "\(provider) answered HTTP \(response.status): \(detail)")
            if disposition == .transient,
                let wait = RetryAfter.delay(response.headers["retry-after"], limit: .seconds(600))
            {
                // Every sender holds off, not only this one.
                await limiter.pause(for: wait)
                error.retryAfter = wait
            }
            throw error
        }
    }
}
