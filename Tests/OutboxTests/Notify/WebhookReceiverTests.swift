import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
import TestSupport

/// A receiver of runner's webhooks, written as the README tells one to: it accepts a fresh
/// delivery and refuses one replayed later, one with its body or timestamp changed (issue 26).
@Suite("Signed webhook deliveries, checked with the README's recipe")
struct WebhookReceiverTests {
    static let secret = "whsec-receiver-0123456789"

    /// The README's `python` block of the Notifications section, its indentation removed.
    static func recipe() throws -> String {
        let section = Readme.text.components(separatedBy: "\n### Notifications\n").last ?? ""
        var lines: [Substring] = []
        var indent: Int?
        for line in section.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.drop { $0 == " " }
            if indent == nil {
                if trimmed == "```python" { indent = line.count - trimmed.count }
            } else if trimmed == "```" {
                break
            } else {
                lines.append(line.dropFirst(min(indent ?? 0, line.count - trimmed.count)))
            }
        }
        guard !lines.isEmpty else { throw TestDatabaseError("the README's Notifications section has no python recipe") }
        return lines.joined(separator: "\n")
    }

    @Test("a fresh delivery is accepted; replayed six minutes later, or with its body or timestamp changed, refused")
    func replayRefused() async throws {
        let server = try await TestHTTPServer(routes: ["POST /hook": ["status": 200]], hmacSecret: Self.secret)
        let setup = try await CLISetup(
            "receiver",
            jobs: """
                jobs:
                  broken:
                    command: ["sh", "-c", "exit 3"]
                    schedule: "0 0 1 1 *"
                    catchup: 400d
                    retries: {max: 0}
                    notify: [{webhook: "\(server.baseURL)/hook"}]
                """, extraEnvironment: ["WEBHOOK_SECRET": Self.secret])
        #expect(try await setup.runner("once", "broken").status == 1)
        let delivery = try #require(try server.requests().first { $0["path"] == "/hook" })
        let body = try #require(delivery["body"]?.stringValue)
        #expect(JSONValue.parse(body)?["event"] == "failed", "the event is in the signed body")
        let saved = try setup.directory.write("delivery.json", delivery.text)
        let recipe = try setup.directory.write("recipe.py", try Self.recipe())
        let harness = try setup.directory.write(
            "receiver.py",
            """
            import json, sys
            exec(open(sys.argv[1]).read())
            request = json.load(open(sys.argv[2]))
            headers, body, secret = request["headers"], request["body"].encode(), sys.argv[3].encode()
            sent = int(headers["X-Runner-Timestamp"])
            moved = dict(headers, **{"X-Runner-Timestamp": str(sent + 60)})
            print(verify(secret, headers, body),
                  verify(secret, headers, body, now=sent + 360),
                  verify(secret, headers, body + b" "),
                  verify(secret, moved, body),
                  verify(b"another secret", headers, body))
            """)
        let result = try await runTool(["/usr/bin/env", "python3", harness.path, recipe.path, saved.path, Self.secret])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "True False False False False\n", "\(result.stdout) \(result.stderr)")
    }
}
