import Foundation
import Ledger
import RunnerSupport

/// A Sentry DSN (`https://PUBLIC_KEY@HOST[:PORT]/[PATH/]PROJECT_ID`), parsed into what an event
/// needs: the envelope endpoint and the key for the `X-Sentry-Auth` header. Never printed.
public struct SentryDSN: Sendable, Equatable {
    public let publicKey: String
    /// `https://HOST[:PORT]/[PATH/]api/PROJECT_ID/envelope/`.
    public let envelopeURL: String
    public let projectID: String

    /// Nil for a value that is not a DSN: the error says what is wrong without quoting it.
    public init(parsing text: String) throws(NotifyError) {
        guard let url = URLComponents(string: text), let scheme = url.scheme, scheme == "https" || scheme == "http",
            let host = url.host, !host.isEmpty, let key = url.user, !key.isEmpty
        else {
            throw NotifyError("SENTRY_DSN is not a DSN (expected https://KEY@HOST/PROJECT_ID)")
        }
        var parts = url.path.split(separator: "/").map(String.init)
        guard let project = parts.popLast(), !project.isEmpty, project.allSatisfy(\.isNumber) else {
            throw NotifyError(
                "SENTRY_DSN has no project id at the end of its path (expected https://KEY@HOST/PROJECT_ID)")
        }
        let port = url.port.map { ":\($0)" } ?? ""
        let prefix = parts.map { "/\($0)" }.joined()
        publicKey = key
        projectID = project
        envelopeURL = "\(scheme)://\(host)\(port)\(prefix)/api/\(project)/envelope/"
    }

    /// `X-Sentry-Auth`, per Sentry's protocol.
    public var authHeader: String {
        "Sentry sentry_version=7, sentry_client=runner/\(RunnerVersion.current), sentry_key=\(publicKey)"
    }

    /// An envelope with one event item: a header line, the item's header, the event.
    package static func envelope(event: JSONValue, eventID: String, sentAt: Date) -> Data {
        let payload = Data(event.text.utf8)
        let header: JSONValue = ["event_id": .string(eventID), "sent_at": .string(Ledger.slotKey(for: sentAt))]
        let item: JSONValue = [
            "type": "event", "length": .number(Double(payload.count)), "content_type": "application/json",
        ]
        return Data((header.text + "\n" + item.text + "\n").utf8) + payload + Data("\n".utf8)
    }
}

/// A notification that cannot be sent as configured.
public struct NotifyError: Error, Sendable, CustomStringConvertible {
    public let description: String
    package init(_ description: String) { self.description = description }
}
