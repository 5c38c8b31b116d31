import Foundation
import Testing

@testable import HTTPClients
@testable import Outbox
import TestSupport

/// What each HTTP channel asks of its server, without a server: the notifier sends it.
@Suite("Notification channels' requests, pure")
struct HTTPChannelTests {
    static let notification = Notification(
        job: "nightly-report", event: .failed, slot: Date(timeIntervalSince1970: 1_767_225_600), runID: 7,
        status: "failed", error: "exit 3", at: Date(timeIntervalSince1970: 1_767_225_660))
    static let now = Date(timeIntervalSince1970: 1_767_225_661)

    @Test("Slack gets its JSON; a webhook gets runner's, signed over the timestamp and body; Sentry an envelope")
    func requests() throws {
        let slack = SlackChannel(url: "https://hooks.slack.test/T/B/x").request(for: Self.notification, at: Self.now)
        #expect(slack.url == "https://hooks.slack.test/T/B/x")
        #expect(slack.headers == ["Content-Type: application/json"])
        #expect(slack.body == Data(Self.notification.slackBody.text.utf8))

        let webhook = WebhookChannel(url: "https://hooks.example/runner", secret: "s3cret")
            .request(for: Self.notification, at: Self.now)
        let body = try #require(webhook.body)
        #expect(body == Data(Self.notification.webhookBody.text.utf8))
        #expect(webhook.headers.contains("X-Runner-Timestamp: 1767225661"))
        #expect(webhook.headers.contains("X-Runner-Event: failed"))
        let signature = try #require(webhook.headers.first { $0.hasPrefix("X-Runner-Signature: ") })
        #expect(signature == "X-Runner-Signature: " + WebhookSignature.sign(body, secret: "s3cret", timestamp: 1_767_225_661))
        // Another secret, or another second, is another signature: a receiver can tell.
        #expect(!signature.hasSuffix(WebhookSignature.sign(body, secret: "other", timestamp: 1_767_225_661)))
        #expect(!signature.hasSuffix(WebhookSignature.sign(body, secret: "s3cret", timestamp: 1_767_225_662)))

        let dsn = try SentryDSN(parsing: "https://public@sentry.example/42")
        let sentry = SentryChannel(dsn: dsn).request(for: Self.notification, at: Self.now)
        #expect(sentry.url == dsn.envelopeURL)
        #expect(sentry.headers.contains("X-Sentry-Auth: \(dsn.authHeader)"))
        let envelope = String(decoding: try #require(sentry.body), as: UTF8.self)
        #expect(envelope.contains("nightly-report") && envelope.split(separator: "\n").count >= 3)
    }
}
