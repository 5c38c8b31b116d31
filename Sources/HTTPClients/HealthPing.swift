import Foundation
import Logging
import RunnerSupport

/// Healthchecks-style pings for a job's `ping_url`: `URL/start` when a run begins, `URL`
/// when it succeeds and `URL/fail` when it fails (after its last attempt), the last two with
/// a one-line summary as the body. A ping that cannot be delivered is logged and never fails
/// the run. The URL identifies the check, so logs name only its host.
public struct HealthPing: Sendable {
    public enum Signal: String, Sendable {
        case start, success, fail
    }

    package let url: String
    package let client: CurlClient
    package let logger: Logger
    /// The start ping in flight: the run does not wait for it; the final ping does.
    private let started = Locked<Task<Void, Never>?>(nil)

    public init(url: String, client: CurlClient = CurlClient(), logger: Logger) {
        self.url = url
        self.client = client
        self.logger = logger
    }

    /// The address for a signal: the path gets `/start` or `/fail`, any query string stays last.
    package static func address(_ url: String, _ signal: Signal) -> String {
        guard signal != .success else { return url }
        let query = url.firstIndex(of: "?").map { url[$0...] } ?? ""
        var path = url.prefix(upTo: url.firstIndex(of: "?") ?? url.endIndex)
        while path.hasSuffix("/") { path = path.dropLast() }
        return "\(path)/\(signal.rawValue)\(query)"
    }

    /// The host of the URL, for logs.
    package var host: String { URL(string: url)?.host ?? "the ping URL" }

    /// Sends the start ping without waiting for it: a slow or hanging endpoint never delays
    /// the run. The final ping waits for it first (at most its 3 s), so the server hears them
    /// in order.
    public func start() {
        let task = Task { await send(.start) }
        started.withLock { $0 = task }
    }

    /// Waits for the start ping, if one is in flight.
    public func flush() async {
        if let start = started.withLock({ $0 }) { await start.value }
    }

    public func send(_ signal: Signal, summary: String? = nil) async {
        if signal != .start { await flush() }
        var transfer = CurlTransfer(url: Self.address(url, signal))
        if let summary {
            transfer.method = "POST"
            transfer.headers = ["Content-Type: text/plain; charset=utf-8"]
            transfer.body = Data(summary.utf8)
        }
        transfer.timeout = .seconds(3)
        transfer.connectTimeout = .seconds(5)
        do {
            let response = try await client.perform(transfer)
            if !(200..<300).contains(response.status) {
                logger.warning(
                    "ping refused",
                    metadata: ["signal": "\(signal.rawValue)", "host": "\(host)", "http_status": "\(response.status)"])
            }
        } catch {
            logger.warning(
                "ping failed",
                metadata: ["signal": "\(signal.rawValue)", "host": "\(host)", "error": "\(error.message)"])
        }
    }
}
