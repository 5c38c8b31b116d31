import Foundation
import HTTPClients
import RunnerSupport

/// The Anthropic Messages API: one request, retried on 429, 529 and 5xx with exponential
/// backoff that honours `retry-after`. `ANTHROPIC_BASE_URL` overrides the host for tests.
public struct AnthropicClient: Sendable {
    public struct Answer: Sendable {
        public let text: String
        public let inputTokens: Int
        public let outputTokens: Int
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    package let apiKey: String
    package let baseURL: String
    package let model: String
    package let timeout: Duration
    package let attempts: Int
    package let backoff: Duration
    /// Retries never wait past it (the run's timeout).
    package let deadline: ContinuousClock.Instant?
    /// The longest wait a `retry-after` may ask for.
    package static let maxRetryAfter: Duration = .seconds(60)
    /// One per concurrent caller: a client runs its transfers one at a time.
    package let client = CurlClient()

    public init(
        apiKey: String, baseURL: String?, model: String, timeout: Duration, attempts: Int = 4,
        backoff: Duration = .seconds(1), deadline: ContinuousClock.Instant? = nil
    ) {
        self.deadline = deadline
        self.apiKey = apiKey
        self.baseURL = (baseURL?.isEmpty == false ? baseURL! : "https://api.anthropic.com")
        self.model = model
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
    }

    public func message(system: String, prompt: String, maxTokens: Int = 1024) async throws -> Answer {
        var transfer = CurlTransfer(url: baseURL + "/v1/messages")
        transfer.method = "POST"
        transfer.headers = [
            "x-api-key: \(apiKey)", "anthropic-version: 2023-06-01", "content-type: application/json",
        ]
        transfer.timeout = timeout
        let body: JSONValue = [
            "model": .string(model), "max_tokens": .number(Double(maxTokens)), "system": .string(system),
            "messages": [["role": "user", "content": .string(prompt)]],
        ]
        transfer.body = Data(body.text.utf8)
        var delay = backoff
        var lastProblem = ""
        for attempt in 1...max(1, attempts) {
            let response: CurlTransfer.Response
            do {
                response = try await client.perform(transfer)
            } catch {
                lastProblem = error.message
                if attempt < attempts { try await Task.sleep(for: delay) }
                delay *= 2
                continue
            }
            switch response.status {
            case 200:
                guard let json = JSONValue.parse(String(decoding: response.body, as: UTF8.self)),
                    case .array(let content)? = json["content"]
                else { throw Failure(description: "Anthropic's answer is not a Messages API response") }
                let text = content.compactMap { block -> String? in
                    if block["type"] == "text", case .string(let text)? = block["text"] { text } else { nil }
                }.joined()
                func tokens(_ name: String) -> Int {
                    if case .number(let count)? = json["usage"]?[name], let tokens = Checked.int(count), tokens >= 0 {
                        tokens
                    } else {
                        0
                    }
                }
                return Answer(text: text, inputTokens: tokens("input_tokens"), outputTokens: tokens("output_tokens"))
            case 429, 529, 500...599:
                lastProblem = "HTTP \(response.status)"
                guard attempt < attempts else { break }
                let wait = Self.wait(retryAfter: response.headers["retry-after"], backoff: delay)
                if let deadline, ContinuousClock.now + wait >= deadline {
                    throw Failure(
                        description:
                            "Anthropic answered HTTP \(response.status) and asks to wait longer than the run has left")
                }
                try await Task.sleep(for: wait)
                delay *= 2
            default:
                let detail = displayEscaped(String(decoding: response.body.prefix(200), as: UTF8.self))
                throw Failure(description: "Anthropic answered HTTP \(response.status): \(detail)")
            }
        }
        throw Failure(description: "Anthropic did not answer after \(attempts) attempts (\(lastProblem))")
    }

    /// The wait before a retry: `retry-after` (seconds) when it is a sane number, never less
    /// than our own backoff, never more than ``maxRetryAfter``.
    package static func wait(retryAfter: String?, backoff: Duration) -> Duration {
        min(max(backoff, RetryAfter.delay(retryAfter, limit: maxRetryAfter) ?? .zero), maxRetryAfter)
    }
}
