import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import EmbeddedPostgres
@testable import HTTPClients
@testable import Outbox
import TestSupport

/// How an attempt ends is judged by what the server may have done: not sent (transient),
/// refused (failed), or maybe delivered (unknown, never retried by itself).
@Suite("Delivery outcomes")
struct DeliveryOutcomeTests {
    static let email = Email(to: ["a@example.com"], subject: "Hello", text: "plain", html: "<p>html</p>")

    @Test("row 7: SendGrid accepts but answers after the timeout: one POST, recorded unknown, never sent again")
    func lateHTTPAnswer() async throws {
        let database = try await ZoarkDatabase("outcomelatehttp")
        let server = try await TestHTTPServer(routes: ["POST /v3/mail/send": ["status": 202, "body": [:], "delay": 3]])
        var mailer = try #require(
            try MailerConfiguration.mailer(environment: [
                "EMAIL_PROVIDER": "sendgrid", "SENDGRID_API_KEY": "SG.k", "SENDGRID_FROM_EMAIL": "runner@zoark.example",
                "SENDGRID_BASE_URL": server.baseURL,
            ]) as? HTTPMailer)
        mailer.timeout = .seconds(1)
        let context = database.context(job: "j", runID: try await database.newRun("j"), mailer: mailer)
        let delivery = EmailDelivery(context: context.outbox, attempts: 3, backoff: .milliseconds(10))
        #expect(try await delivery.deliver(Self.email, key: "late") == .unknown)
        #expect(try server.requests().count == 1)
        let effect = try #require(try await context.effects.effect(kind: "email", key: "j:late"))
        #expect(effect.status == .unknown)
        #expect(effect.lastError?.hasPrefix("outcome unknown") == true)
        // Later runs neither resend it nor find it pending.
        #expect(try await delivery.deliver(Self.email, key: "late") == .alreadyRecorded)
        #expect(try await delivery.finishPending().isEmpty)
        #expect(try await context.effects.list(kind: "email", status: .unknown).map(\.key) == ["j:late"])
        #expect(try server.requests().count == 1)
    }

    @Test("row 8: SMTP times out after DATA was sent: unknown, not failed; a connect error before it is transient")
    func smtpAfterData() async throws {
        let database = try await ZoarkDatabase("outcomesmtp")
        let slow = try await TestSMTPServer(delay: 3)
        let mailer = SMTPMailer(
            host: "127.0.0.1", port: slow.port, security: .none, username: nil, password: nil,
            from: "runner@example.com", client: CurlClient(), timeout: .seconds(1))
        let context = database.context(job: "j", runID: try await database.newRun("j"), mailer: mailer)
        let delivery = EmailDelivery(context: context.outbox, attempts: 3, backoff: .milliseconds(10))
        #expect(try await delivery.deliver(Self.email, key: "slow") == .unknown)
        // The server did take it: it arrives once, and nothing sends it again.
        var arrived = 0
        for _ in 0..<100 where arrived == 0 {
            try await Task.sleep(for: .milliseconds(100))
            arrived = try slow.messages().count
        }
        #expect(arrived == 1)
        #expect(try await delivery.finishPending().isEmpty)
        #expect(try slow.messages().count == 1)

        let nobody = SMTPMailer(
            host: "127.0.0.1", port: try EmbeddedPostgres.freePort(), security: .none, username: nil, password: nil,
            from: "runner@example.com", client: CurlClient(), timeout: .seconds(2))
        let refused = EmailDelivery(
            context: database.context(job: "j", runID: try await database.newRun("j"), mailer: nobody).outbox,
            attempts: 1)
        #expect(try await refused.deliver(Self.email, key: "refused") == .pending)
        #expect(try await context.effects.effect(kind: "email", key: "j:refused")?.status == .pending)
    }

    @Test("row 13: credentials make STARTTLS the default on every port; none must be written out, and then it warns")
    func credentialsNeedTLS() async throws {
        let plain = try await TestSMTPServer()
        func mailer(_ extra: [String: String]) throws -> SMTPMailer {
            try #require(
                try MailerConfiguration.mailer(
                    environment: [
                        "EMAIL_PROVIDER": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_FROM": "runner@example.com",
                    ]
                    .merging(extra) { $1 }) as? SMTPMailer)
        }
        let withUser = try mailer(["SMTP_PORT": String(plain.port), "SMTP_USER": "u", "SMTP_PASSWORD": "hunter2"])
        #expect(withUser.security == .startTLS)
        #expect(withUser.insecureCredentials == nil)
        for port in ["25", "2525", "587"] {
            #expect(try mailer(["SMTP_PORT": port, "SMTP_USER": "u"]).security == .startTLS)
        }
        #expect(try mailer(["SMTP_PORT": "465", "SMTP_USER": "u"]).security == .tls)
        #expect(try mailer(["SMTP_PORT": "25"]).security == .none)
        do {
            try await withUser.send(Self.email, messageID: "m@example.com")
            Issue.record("a server without STARTTLS got credentials")
        } catch {
            #expect(error.disposition == .transient)
            #expect(!error.message.contains("hunter2"))
        }
        #expect(try plain.messages().isEmpty)
        let insecure = try mailer(["SMTP_PORT": "25", "SMTP_USER": "u", "SMTP_SECURITY": "none"])
        #expect(insecure.security == .none)
        #expect(insecure.insecureCredentials?.contains("SMTP_SECURITY=none") == true)
        #expect(throws: MailerConfiguration.Problem.self) { try mailer(["SMTP_PORT": "99999"]) }
        #expect(throws: MailerConfiguration.Problem.self) { try mailer(["SMTP_FROM": "a@b.c\r\nBcc: x@evil.com"]) }
    }

    @Test(
        "STARTTLS and AUTH as production runs them: delivered over TLS and logged in; a certificate not trusted sends nothing"
    )
    func startTLSAndAuth() async throws {
        let server = try await TestSMTPServer(tls: true, auth: ("runner", "app-password-1"))
        func mailer(password: String) throws -> SMTPMailer {
            try #require(
                try MailerConfiguration.mailer(environment: [
                    "EMAIL_PROVIDER": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": String(server.port),
                    "SMTP_USER": "runner", "SMTP_PASSWORD": password, "SMTP_FROM": "runner@example.com",
                    "SMTP_CA_FILE": server.certificateFile ?? "",
                ]) as? SMTPMailer)
        }
        let good = try mailer(password: "app-password-1")
        #expect(good.security == .startTLS)
        try await good.send(Self.email, messageID: "m1@example.com")
        #expect(try server.messages().count == 1)
        #expect(server.authLog().allSatisfy { $0.hasSuffix("tls=True") })
        #expect(server.authLog().count == 1)
        // Without the throwaway CA the certificate is not trusted: nothing is sent.
        var untrusting = try mailer(password: "app-password-1")
        untrusting.caFile = nil
        do {
            try await untrusting.send(Self.email, messageID: "m3@example.com")
            Issue.record("an untrusted certificate was accepted")
        } catch {
            #expect(error.disposition == .transient)
        }
        #expect(try server.messages().count == 1)
    }

    @Test("30 emails on 4 connections over STARTTLS and AUTH: at most 4 sessions, one login each, every email once")
    func connectionsAreReused() async throws {
        let server = try await TestSMTPServer(tls: true, auth: ("runner", "app-password-1"))
        let mailer = try #require(
            try MailerConfiguration.mailer(environment: [
                "EMAIL_PROVIDER": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": String(server.port),
                "SMTP_USER": "runner", "SMTP_PASSWORD": "app-password-1", "SMTP_FROM": "runner@example.com",
                "SMTP_CA_FILE": server.certificateFile ?? "", "EMAIL_MAX_CONNECTIONS": "4",
            ]))
        #expect(mailer.maxConnections == 4)
        // Eight senders at once on a pool of four: half wait their turn for a connection.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<8 {
                group.addTask {
                    for index in stride(from: sender, to: 30, by: 8) {
                        try await mailer.send(Self.email, messageID: "m\(index)@example.com")
                    }
                }
            }
            try await group.waitForAll()
        }
        let messages = try server.messages()
        #expect(messages.count == 30)
        let ids = messages.compactMap { headerValue("Message-ID", in: $0) }
        #expect(Set(ids).count == 30)
        let peers = Set(messages.compactMap { headerValue("X-Peer", in: $0) })
        #expect((1...4).contains(peers.count), "\(peers.count) connections for 30 emails")
        #expect((1...4).contains(server.authLog().count), "\(server.authLog().count) logins")
        #expect(server.authLog().allSatisfy { $0.hasSuffix("tls=True") })
    }

    @Test(
        "a kept SMTP session the server dropped: the next email is not lost, nor counted unknown, nor kills the process"
    )
    func droppedKeptConnection() async throws {
        let first = try await TestSMTPServer(tls: true, auth: ("runner", "pw"))
        let port = first.port
        let certificate = try #require(first.certificateFile)
        let certificateCopy = FileManager.default.temporaryDirectory.appendingPathComponent("kept-\(port).pem")
        try? FileManager.default.removeItem(at: certificateCopy)
        try FileManager.default.copyItem(atPath: certificate, toPath: certificateCopy.path)
        defer { try? FileManager.default.removeItem(at: certificateCopy) }
        let mailer = try #require(
            try MailerConfiguration.mailer(environment: [
                "EMAIL_PROVIDER": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": String(port), "SMTP_USER": "runner",
                "SMTP_PASSWORD": "pw", "SMTP_FROM": "runner@example.com", "SMTP_CA_FILE": certificateCopy.path,
                "EMAIL_MAX_CONNECTIONS": "1",
            ]))
        try await mailer.send(Self.email, messageID: "kept1@example.com")
        #expect(try first.messages().count == 1)
        // The server goes away with the session open; the client still holds it.
        try await first.stop()
        do {
            try await mailer.send(Self.email, messageID: "kept2@example.com")
            Issue.record("a send to a stopped server succeeded")
        } catch {
            // Nothing had left: the email may be tried again, never counted as maybe delivered.
            #expect(error.disposition == .transient, "\(error)")
        }
    }

    @Test("Resend's preset of 2 requests/s holds on 4 connections; EMAIL_RATE_LIMIT sets another or none")
    func rateLimit() async throws {
        let server = try await TestHTTPServer(routes: ["POST /emails": ["status": 200, "body": ["id": "x"]]])
        func send(_ count: Int, environment: [String: String]) async throws -> (started: Date, requests: [Double]) {
            let before = try server.requests().count
            let mailer = try #require(
                try MailerConfiguration.mailer(
                    environment: [
                        "EMAIL_PROVIDER": "resend", "RESEND_API_KEY": "re_k",
                        "RESEND_FROM_EMAIL": "runner@zoark.example",
                        "RESEND_BASE_URL": server.baseURL, "EMAIL_MAX_CONNECTIONS": "4",
                    ].merging(environment) { $1 }))
            let started = Date()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<count {
                    group.addTask {
                        try await mailer.ready()
                        try await mailer.send(Self.email, messageID: "r\(index)@zoark.example")
                    }
                }
                try await group.waitForAll()
            }
            let times = try server.requests().dropFirst(before).compactMap { request -> Double? in
                if case .number(let at)? = request["at"] { at } else { nil }
            }
            return (started, times.sorted())
        }
        // Five requests at 2/s: the fifth may not start before two seconds have passed. A slow
        // machine only makes it later.
        let preset = try await send(5, environment: [:])
        #expect(preset.requests.count == 5)
        #expect(try #require(preset.requests.last) - preset.started.timeIntervalSince1970 >= 1.95)
        let faster = try await send(5, environment: ["EMAIL_RATE_LIMIT": "10/s"])
        #expect(try #require(faster.requests.last) - faster.started.timeIntervalSince1970 >= 0.35)
        #expect(throws: MailerConfiguration.Problem.self) {
            try MailerConfiguration.mailer(environment: [
                "EMAIL_PROVIDER": "resend", "RESEND_API_KEY": "k", "RESEND_FROM_EMAIL": "a@b.example",
                "EMAIL_RATE_LIMIT": "fast",
            ])
        }
        #expect(throws: MailerConfiguration.Problem.self) {
            try MailerConfiguration.mailer(environment: [
                "EMAIL_PROVIDER": "smtp", "SMTP_HOST": "h", "SMTP_FROM": "a@b.example", "EMAIL_MAX_CONNECTIONS": "0",
            ])
        }
    }

    @Test("a 429 with Retry-After: the next attempt waits at least that long, and the email goes once")
    func retryAfter() async throws {
        let server = try await TestHTTPServer(routes: [
            "POST /v3/mail/send": [
                [
                    "status": 429, "body": ["errors": [["message": "too many requests"]]],
                    "headers": ["Retry-After": "1"],
                ],
                ["status": 202, "body": [:]],
            ]
        ])
        let mailer = try #require(
            try MailerConfiguration.mailer(environment: [
                "EMAIL_PROVIDER": "sendgrid", "SENDGRID_API_KEY": "SG.k", "SENDGRID_FROM_EMAIL": "runner@zoark.example",
                "SENDGRID_BASE_URL": server.baseURL,
            ]))
        let database = try await ZoarkDatabase("outcomeretryafter")
        let context = database.context(job: "j", runID: try await database.newRun("j"), mailer: mailer)
        // A backoff far shorter than the server asked for: the server's wait wins.
        #expect(
            try await EmailDelivery(context: context.outbox, backoff: .milliseconds(10)).deliver(Self.email, key: "k") == .sent
        )
        let times = try server.requests().compactMap { request -> Double? in
            if case .number(let at)? = request["at"] { at } else { nil }
        }
        #expect(times.count == 2)
        #expect(times.count == 2 && times[1] - times[0] >= 0.99, "\(times)")
    }

    @Test("row 17: Message-ID and Idempotency-Key carry the ledger's random id and the sending domain")
    func idsPerLedger() async throws {
        let server = try await TestHTTPServer(routes: ["POST /emails": ["status": 200, "body": ["id": "x"]]])
        let mailer = try #require(
            try MailerConfiguration.mailer(environment: [
                "EMAIL_PROVIDER": "resend", "RESEND_API_KEY": "re_k",
                "RESEND_FROM_EMAIL": "Runner <runner@zoark.example>",
                "RESEND_BASE_URL": server.baseURL,
            ]))
        var keys: [String] = []
        for label in ["outcomestaging", "outcomeproduction"] {
            let database = try await ZoarkDatabase(label)
            let context = database.context(
                job: "j", runID: try await database.newRun("j"), mailer: mailer)
            #expect(try await EmailDelivery(context: context.outbox).deliver(Self.email, key: "k") == .sent)
            let ledger = try await context.effects.ledgerID()
            #expect(ledger.count == 32)
            let effectID = try #require(try await context.effects.effect(kind: "email", key: "j:k")?.id)
            let request = try #require(try server.requests().last)
            guard case .string(let key)? = request["headers"]?["Idempotency-Key"] else {
                Issue.record("no Idempotency-Key")
                return
            }
            // The key names the effect and the ledger only: a new sender address cannot move it.
            #expect(key == "effect-\(effectID).\(ledger)")
            let body = try #require(
                request["body"].flatMap { if case .string(let t) = $0 { JSONValue.parse(t) } else { nil } })
            #expect(body["headers"]?["Message-ID"] == .string("<\(key)@zoark.example>"))
            #expect(body["from"] == "\"Runner\" <runner@zoark.example>")
            keys.append(key)
        }
        #expect(keys.count == 2 && keys[0] != keys[1])
    }
}
