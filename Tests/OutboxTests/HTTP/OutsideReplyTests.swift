import Foundation
import Logging
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import HTTPClients
@testable import ZOARK
@testable import VectorOS
import TestSupport

/// Provider and model replies are outside input: odd headers, numbers, sizes and delays.
@Suite("Outside replies")
struct OutsideReplyTests {
    @Test(
        "row 6: retry-after is read as a bounded number of seconds, never trusted whole",
        arguments: [
            ("2", 2000), ("0.5", 1000), ("3600", 60_000), ("1e300", 60_000), ("inf", 1000), ("nan", 1000),
            ("-5", 1000), ("soon", 1000), ("", 1000), ("Wed, 21 Oct 2015 07:28:00 GMT", 1000),
        ] as [(String, Int64)])
    func retryAfter(header: String, milliseconds: Int64) {
        #expect(AnthropicClient.wait(retryAfter: header, backoff: .seconds(1)) == .milliseconds(milliseconds))
    }

    @Test("row 6: a retry-after longer than the run has left ends the call at once, and the rules answer")
    func retryAfterPastDeadline() async throws {
        let server = try await TestHTTPServer(routes: [
            "POST /v1/messages": ["status": 429, "headers": ["retry-after": "1e300"], "body": ["type": "error"]]
        ])
        let client = AnthropicClient(
            apiKey: "sk", baseURL: server.baseURL, model: "m", timeout: .seconds(10), backoff: .milliseconds(10),
            deadline: .now + .seconds(20))
        let started = ContinuousClock.now
        do {
            _ = try await client.message(system: "s", prompt: "p")
            Issue.record("a 429 succeeded")
        } catch {
            #expect("\(error)".contains("longer than the run has left"))
        }
        // Nowhere near the 60 s a retry-after may ask for at most (the bound is loose on purpose).
        #expect(ContinuousClock.now - started < .seconds(20))
        #expect(try server.requests().count == 1)
    }

    @Test("row 6: GitHub sizes and Anthropic token counts out of range are ignored, not converted")
    func hugeCounts() async throws {
        let now = Date()
        let created = InstantFormat.string(now.addingTimeInterval(-3600), in: TimeZone(identifier: "UTC")!)
        let events: JSONValue = .array(
            [1e300, -5, 1e20, 3, .infinity].enumerated().map { index, size in
                [
                    "type": "PushEvent", "created_at": .string(created), "repo": ["name": .string("o/r\(index)")],
                    "payload": ["size": size.isFinite ? .number(size) : .string("Infinity")],
                ]
            })
        let github = try await TestHTTPServer(routes: ["GET /users/octocat/events": ["status": 200, "body": events]])
        let activity = try await GitHubClient(environment: ["GITHUB_API_URL": github.baseURL])
            .activity(of: "octocat", since: now.addingTimeInterval(-86_400))
        #expect(activity.pushes == 5)
        #expect(activity.commits == 3)

        let model = try await TestHTTPServer(routes: [
            "POST /v1/messages": [
                "status": 200,
                "body": [
                    "content": [["type": "text", "text": "[]"]],
                    "usage": ["input_tokens": 1e300, "output_tokens": -7],
                ],
            ]
        ])
        let answer = try await AnthropicClient(apiKey: "sk", baseURL: model.baseURL, model: "m", timeout: .seconds(10))
            .message(system: "s", prompt: "p")
        #expect(answer.inputTokens == 0)
        #expect(answer.outputTokens == 0)
    }

    @Test("row 14: a 500ms timeout stays 500ms (it used to become 0: no timeout at all)")
    func subSecondTimeout() async throws {
        #expect(CurlTransfer.milliseconds(.milliseconds(500)) == 500)
        #expect(CurlTransfer.milliseconds(.milliseconds(1)) == 1)
        #expect(CurlTransfer.milliseconds(.zero) == 1)
        #expect(CurlTransfer.milliseconds(.seconds(1_000_000_000)) == 86_400_000)
        let server = try await TestHTTPServer(routes: ["POST /v1/messages": ["status": 200, "body": [:], "delay": 3]])
        let client = AnthropicClient(
            apiKey: "sk", baseURL: server.baseURL, model: "m", timeout: .milliseconds(500), attempts: 1)
        do {
            _ = try await client.message(system: "s", prompt: "p")
            Issue.record("the call waited for the slow answer")
        } catch {
            #expect("\(error)".contains("did not answer"))
        }
    }

    @Test(
        "row 18: a body past its cap (1 MiB for the Messages API, 8 MiB for GitHub's events) is refused, not read whole"
    )
    func hugeBody() async throws {
        let huge: JSONValue = ["content": [["type": "text", "text": .string(String(repeating: "x", count: 2 << 20))]]]
        let model = try await TestHTTPServer(routes: ["POST /v1/messages": ["status": 200, "body": huge]])
        do {
            _ = try await AnthropicClient(
                apiKey: "sk", baseURL: model.baseURL, model: "m", timeout: .seconds(10), attempts: 1
            )
            .message(system: "s", prompt: "p")
            Issue.record("a 2 MiB body was read")
        } catch {
            #expect("\(error)".contains("larger than 1048576 bytes"))
        }
        let github = try await TestHTTPServer(routes: [
            "GET /users/octocat/events": [
                "status": 200, "body": .array([.string(String(repeating: "x", count: 9 << 20))]),
            ]
        ])
        // Time enough for a loaded machine's test server to send it: the cap is what is tested.
        var client = GitHubClient(environment: ["GITHUB_API_URL": github.baseURL])
        client.timeout = .seconds(60)
        do {
            _ = try await client.activity(of: "octocat", since: Date())
            Issue.record("a 9 MiB body was read")
        } catch {
            #expect(error.description.contains("larger than 8388608 bytes"))
        }
    }

    @Test("row 18: GitHub hanging for 60 users costs one wave of 5 s timeouts, then the run goes on without it")
    func githubDown() async throws {
        let server = try await TestHTTPServer(routes: ["GET /users/*": ["status": 200, "body": [], "delay": 30]])
        let started = ContinuousClock.now
        let results = await TimesheetDrafter.githubActivity(
            of: (0..<60).map { "user\($0)" }, since: Date(),
            client: GitHubClient(environment: ["GITHUB_API_URL": server.baseURL]),
            logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        #expect(results.count == 60)
        #expect(results.allSatisfy { if case .failure? = $0 { true } else { false } })
        // 4 at a time; after 3 failures in a row no more are asked: at most the first wave and
        // the two started as its first failures came back, not 60.
        #expect(try server.requests().count <= 6)
        _ = started
    }
}
