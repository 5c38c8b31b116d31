import Foundation
import HTTPClients

/// A place a notification goes over HTTP. It only builds the request; the notifier records the
/// effect, leases it, sends the request within its bounds and steps the effect through
/// ``EffectStateMachine``, the same for every channel.
package protocol HTTPChannel: Sendable {
    func request(for notification: Notification, at now: Date) -> CurlTransfer
}

/// A Slack incoming webhook: the message as Slack's JSON.
package struct SlackChannel: HTTPChannel {
    package let url: String

    package func request(for notification: Notification, at now: Date) -> CurlTransfer {
        var transfer = CurlTransfer(url: url)
        transfer.body = Data(notification.slackBody.text.utf8)
        transfer.headers = ["Content-Type: application/json"]
        return transfer
    }
}

/// A URL that receives runner's JSON, signed with `WEBHOOK_SECRET` (``WebhookSignature``).
package struct WebhookChannel: HTTPChannel {
    package let url: String
    package let secret: String

    package func request(for notification: Notification, at now: Date) -> CurlTransfer {
        var transfer = CurlTransfer(url: url)
        let body = Data(notification.webhookBody.text.utf8)
        transfer.body = body
        // The event is in the signed body; the header is a convenience for routing.
        let timestamp = Int64(now.timeIntervalSince1970)
        transfer.headers = [
            "Content-Type: application/json", "X-Runner-Event: \(notification.event.rawValue)",
            "\(WebhookSignature.timestampHeader): \(timestamp)",
            "\(WebhookSignature.header): " + WebhookSignature.sign(body, secret: secret, timestamp: timestamp),
        ]
        return transfer
    }
}

/// Sentry's envelope endpoint for `SENTRY_DSN`: one event per failed run.
package struct SentryChannel: HTTPChannel {
    package let dsn: SentryDSN

    package func request(for notification: Notification, at now: Date) -> CurlTransfer {
        let eventID = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        var transfer = CurlTransfer(url: dsn.envelopeURL)
        transfer.body = SentryDSN.envelope(
            event: notification.sentryEvent(eventID: eventID), eventID: eventID, sentAt: now)
        transfer.headers = ["Content-Type: application/x-sentry-envelope", "X-Sentry-Auth: \(dsn.authHeader)"]
        return transfer
    }
}
