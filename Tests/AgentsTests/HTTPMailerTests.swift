import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import Outbox
import TestSupport

/// SendGrid and Resend against local servers that speak their documented formats.
@Suite("SendGrid and Resend")
struct HTTPMailerTests {
    static let email = Email(
        to: ["a@example.com"], cc: ["boss@example.com"], subject: "[Urgent] Approval Pending — FINANCE_CHECK ($1.00)",
        text: "plain", html: "<p>html</p>")

    @Test("SendGrid: POST /v3/mail/send with a bearer key and personalizations; 202 is success")
    func sendGrid() async throws {
        let server = try await TestHTTPServer(routes: ["POST /v3/mail/send": ["status": 202, "body": [:]]])
        let mailer = try #require(
            try MailerConfiguration.mailer(environment: [
                "EMAIL_PROVIDER": "sendgrid", "SENDGRID_API_KEY": "SG.secret",
                "SENDGRID_FROM_EMAIL": "runner@zoark.example",
                "SENDGRID_BASE_URL": server.baseURL,
            ]))
        try await mailer.send(Self.email, messageID: "effect-1@runner")
        let request = try #require(try server.requests().first)
        #expect(request["headers"]?["Authorization"] == "Bearer SG.secret")
        let body = try #require(
            request["body"].flatMap { if case .string(let text) = $0 { JSONValue.parse(text) } else { nil } })
        #expect(body["from"]?["email"] == "runner@zoark.example")
        #expect(body["subject"] == .string(Self.email.subject))
        guard case .array(let personalizations)? = body["personalizations"], let first = personalizations.first else {
            Issue.record("no personalizations in \(body.text)")
            return
        }
        #expect(first["to"] == [["email": "a@example.com"]])
        #expect(first["cc"] == [["email": "boss@example.com"]])
        #expect(
            body["content"] == [
                ["type": "text/plain", "value": "plain"], ["type": "text/html", "value": "<p>html</p>"],
            ])
    }

    @Test("Resend: POST /emails with an Idempotency-Key; 429 and 5xx are transient, 4xx permanent")
    func resend() async throws {
        let server = try await TestHTTPServer(routes: [
            "POST /emails": [
                ["status": 429, "body": ["message": "slow down"]], ["status": 200, "body": ["id": "abc"]],
                ["status": 422, "body": ["message": "invalid to"]], ["status": 503, "body": [:]],
            ]
        ])
        let mailer = try #require(
            try MailerConfiguration.mailer(environment: [
                "EMAIL_PROVIDER": "resend", "RESEND_API_KEY": "re_secret", "RESEND_FROM_EMAIL": "runner@zoark.example",
                "RESEND_BASE_URL": server.baseURL,
            ]))
        do {
            try await mailer.send(Self.email, messageID: "effect-2@runner")
            Issue.record("429 should fail")
        } catch {
            #expect(error.transient)
        }
        try await mailer.send(Self.email, messageID: "effect-2@runner")
        do {
            try await mailer.send(Self.email, messageID: "effect-3@runner")
            Issue.record("422 should fail")
        } catch {
            #expect(!error.transient)
            #expect(error.message.contains("422"))
        }
        do {
            try await mailer.send(Self.email, messageID: "effect-4@runner")
            Issue.record("503 should fail")
        } catch {
            #expect(error.transient)
        }
        let requests = try server.requests()
        #expect(requests.count == 4)
        #expect(requests[1]["headers"]?["Idempotency-Key"] == "effect-2")
        #expect(requests[1]["headers"]?["Authorization"] == "Bearer re_secret")
        let body = try #require(
            requests[1]["body"].flatMap { if case .string(let text) = $0 { JSONValue.parse(text) } else { nil } })
        #expect(body["to"] == ["a@example.com"])
        #expect(body["cc"] == ["boss@example.com"])
        #expect(body["html"] == "<p>html</p>")
    }

    @Test("configuration errors name the missing variable and never its neighbours' values")
    func configuration() throws {
        #expect(try MailerConfiguration.mailer(environment: [:]) == nil)
        #expect(throws: MailerConfiguration.Problem.self) {
            try MailerConfiguration.mailer(environment: ["EMAIL_PROVIDER": "sendgrid", "SENDGRID_API_KEY": "SG.x"])
        }
        do {
            _ = try MailerConfiguration.mailer(environment: [
                "EMAIL_PROVIDER": "carrier-pigeon", "SMTP_PASSWORD": "hunter2",
            ])
            Issue.record("an unknown provider was accepted")
        } catch {
            #expect(error.description.contains("carrier-pigeon"))
            #expect(!error.description.contains("hunter2"))
        }
        let gmail = try #require(
            try MailerConfiguration.mailer(environment: [
                "EMAIL_PROVIDER": "smtp", "SMTP_PRESET": "gmail", "SMTP_USER": "me@gmail.com",
                "SMTP_PASSWORD": "app-pw",
            ]) as? SMTPMailer)
        #expect(gmail.host == "smtp.gmail.com")
        #expect(gmail.port == 587)
        #expect(gmail.security == .startTLS)
        #expect(gmail.from == "me@gmail.com")
        let tls = try #require(
            try MailerConfiguration.mailer(environment: [
                "EMAIL_PROVIDER": "smtp", "SMTP_HOST": "mail.example", "SMTP_PORT": "465", "SMTP_FROM": "a@b.c",
            ])
                as? SMTPMailer)
        #expect(tls.security == .tls)
    }
}
