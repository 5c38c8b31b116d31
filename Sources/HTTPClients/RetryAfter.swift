import Foundation
import RunnerSupport

/// A `Retry-After` header as the delay it asks for: a number of seconds (the form APIs send),
/// at most `limit`; nil when absent, zero or not a finite number. Never trusted whole.
package enum RetryAfter {
    package static func delay(_ header: String?, limit: Duration) -> Duration? {
        guard let text = header?.trimmingCharacters(in: .whitespaces), let seconds = Double(text), seconds.isFinite,
            seconds > 0
        else { return nil }
        return .milliseconds(Int64(min(seconds, limit.timeInterval) * 1000))
    }
}
