import Foundation

/// A change in a job's state that someone may want to hear of (`notify:` events).
public enum NotifyEvent: String, Sendable, CaseIterable, Codable {
    /// The first failed slot after a success, then again every `repeat_after` while it fails.
    case failed
    /// A success after failures.
    case recovered
    /// A slot past its catchup with no run.
    case missed
    /// A run stopped at its timeout.
    case timedOut = "timed_out"
    /// A run still running past `warn_after` (it is not stopped).
    case runningLong = "running_long"

    /// What a channel hears when its `events:` are not given.
    public static let standard: Set<NotifyEvent> = [.failed, .recovered, .missed, .timedOut]
}

/// One `notify:` channel of a job: where to say it, and which events it wants.
public struct NotifyChannel: Sendable, Equatable {
    public enum Target: Sendable, Equatable {
        /// A Slack incoming webhook.
        case slack(String)
        /// A URL that receives runner's JSON, signed with `WEBHOOK_SECRET`.
        case webhook(String)
        /// Email, through the runner's delivery (drafts without a provider).
        case email([EmailAddress])
    }

    public let target: Target
    public let events: Set<NotifyEvent>

    public init(_ target: Target, events: Set<NotifyEvent> = NotifyEvent.standard) {
        self.target = target
        self.events = events
    }

    /// The channel's name in effect keys and logs: its kind and a digest of where it goes, never
    /// the URL (a webhook URL is itself a secret).
    public var label: String {
        switch target {
        case .slack(let url): return "slack-\(Self.digest(url))"
        case .webhook(let url): return "webhook-\(Self.digest(url))"
        case .email(let addresses): return "email-\(Self.digest(addresses.map(\.address).joined(separator: ",")))"
        }
    }

    /// The channel's URL, which is itself a secret (a Slack or webhook URL lets anyone post).
    public var secretURL: String? {
        switch target {
        case .slack(let url), .webhook(let url): return url
        case .email: return nil
        }
    }

    /// 8 hex digits of FNV-1a: stable across processes and hosts (unlike Hasher).
    package static func digest(_ text: String) -> String {
        var hash: UInt32 = 2_166_136_261
        for byte in text.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return String(format: "%08x", hash)
    }
}
