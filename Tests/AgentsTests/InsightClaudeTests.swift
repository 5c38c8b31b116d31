import Foundation
import Logging
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import Cron
@testable import Ledger
@testable import Outbox
@testable import VectorOS
import TestSupport

/// The Claude path against a local server speaking the Messages API.
@Suite("Insight generator with Claude")
struct InsightClaudeTests {
    /// One anomalous deal: inactive 10 days (stale, high) and worth 50,000 (at risk, critical).
    static let seed = """
        INSERT INTO users ("id", "email", "updatedAt") VALUES ('u1', 'owner@vector.example', NOW);
        INSERT INTO workspaces ("id", "name", "slug", "ownerId", "updatedAt") VALUES ('w1', 'Acme', 'acme', 'u1', NOW);
        INSERT INTO deals ("id", "title", "value", "stage", "probability", "workspaceId", "createdAt", "updatedAt") VALUES
            ('x1', 'Big <Renewal>', 50000, 'lead', 50, 'w1', NOW - interval '10 days 1 hour', NOW - interval '10 days 1 hour'),
            ('ok1', 'Healthy', 500, 'lead', 50, 'w1', NOW - interval '1 day', NOW);
        """

    static func message(_ text: String) -> JSONValue {
        [
            "status": 200,
            "body": [
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [["type": "text", "text": .string(text)]], "stop_reason": "end_turn",
                "usage": ["input_tokens": 321, "output_tokens": 54],
            ],
        ]
    }

    static let good = """
        [{"type": "high_value_at_risk", "title": "Renewal worth $50k has gone quiet", "description": "No contact in 10 days.",
          "priority": "critical", "confidence": 0.9,
          "actions": [{"action": "Call the champion", "priority": "high", "timeline": "today", "expected_impact": "re-engage"}]},
         {"type": "stale", "title": "Ten days without activity", "description": "Schedule a check-in.", "priority": "high",
          "confidence": 1.7, "actions": []}]
        """

    func run(_ answers: [JSONValue]) async throws -> (
        report: AgentReport, database: ZoarkDatabase, server: TestHTTPServer
    ) {
        let database = try await ZoarkDatabase("claude")
        try await database.connection.execute(VectorOSSchema.sql)
        try await database.seed(Self.seed)
        let server = try await TestHTTPServer(routes: ["POST /v1/messages": .array(answers)])
        let context = database.context(
            job: "deal-insights", runID: try await database.newRun("i"),
            environment: [
                "ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": server.baseURL, "RUNNER_LLM_BACKOFF": "50ms",
            ])
        var options = InsightGenerator.Options()
        options.model = "claude-test-model"
        return (try await InsightGenerator(options: options).run(context), database, server)
    }

    static func insights(_ database: ZoarkDatabase) async throws -> [[String]] {
        try await database.connection.query(
            #"SELECT "dealId", "workspaceId", "type", "title", "priority", "confidence"::text AS confidence, data->>'deal_id' AS data_deal, data->>'source' AS source FROM insights ORDER BY "type""#
        ).map { row in
            try ["dealId", "workspaceId", "type", "title", "priority", "confidence", "data_deal", "source"].map {
                try row.string($0) ?? "-"
            }
        }
    }

    @Test("good JSON: the model's insights, clamped, with the runner's deal id; tokens counted")
    func goodAnswer() async throws {
        let (report, database, server) = try await run([Self.message(Self.good)])
        #expect(report.outcome["llm_calls"] == 1)
        #expect(report.outcome["insights_created"] == 2)
        #expect(report.metrics.contains(Metric("llm_input_tokens", 321)))
        #expect(report.metrics.contains(Metric("llm_output_tokens", 54)))
        #expect(
            try await Self.insights(database) == [
                [
                    "x1", "w1", "high_value_at_risk", "Renewal worth $50k has gone quiet", "critical", "0.9", "x1",
                    "claude",
                ],
                ["x1", "w1", "stale", "Ten days without activity", "high", "1", "x1", "claude"],
            ])
        let request = try #require(try server.requests().first)
        #expect(request["headers"]?["x-api-key"] == "sk-ant-test")
        #expect(request["headers"]?["anthropic-version"] == "2023-06-01")
        guard case .string(let bodyText)? = request["body"], let body = JSONValue.parse(bodyText) else {
            Issue.record("no request body")
            return
        }
        #expect(body["model"] == "claude-test-model")
        guard
            case .string(let prompt)? = body["messages"].flatMap({ if case .array(let m) = $0 { m.first } else { nil } }
            )?["content"]
        else {
            Issue.record("no prompt")
            return
        }
        #expect(prompt.contains("Big <Renewal>"))
        #expect(prompt.contains("high_value_at_risk"))
    }

    @Test("fenced JSON holding an object, with a made-up deal id the runner ignores")
    func fencedAndMadeUpDeal() async throws {
        let answer = """
            Here you go:
            ```json
            {"insights": [{"deal_id": "deal-that-does-not-exist", "dealId": "evil", "type": "stale",
              "title": "\(String(repeating: "T", count: 150))", "description": "\(String(repeating: "D", count: 400))",
              "priority": "urgent!!", "confidence": -3}]}
            ```
            """
        let (report, database, _) = try await run([Self.message(answer)])
        // The model answered for "stale" only: the deal's other anomaly takes the rule's insight.
        #expect(report.outcome["insights_created"] == 2)
        #expect(report.outcome["model_left_out"] == 1)
        let fallback = try await database.connection.query(
            #"SELECT data->>'source' AS source FROM insights WHERE "type" = 'high_value_at_risk'"#)
        #expect(try fallback.first?.string("source") == "rules (the model left this anomaly out)")
        let rows = try await database.connection.query(
            #"SELECT "dealId", length("title") AS t, length("description") AS d, "priority", "confidence", data->>'deal_id' AS data_deal FROM insights WHERE "type" = 'stale'"#
        )
        let row = try #require(rows.first)
        #expect(try row.string("dealId") == "x1")
        #expect(try row.string("data_deal") == "x1")
        #expect(try row.int("t") == 100)
        #expect(try row.int("d") == 300)
        #expect(try row.string("priority") == "high")  // the anomaly's, since "urgent!!" is not a priority
        #expect(try row.double("confidence") == 0)
    }

    @Test("row 12: actions that fail the insight shape are replaced by the rule's and counted")
    func invalidActions() async throws {
        let answer = """
            [{"type": "stale", "title": "Quiet deal", "description": "Ten days.", "priority": "high", "confidence": 0.8,
              "actions": [{"action": "Call", "priority": "SUPER", "timeline": "now", "expected_impact": "x"},
                          {"action": "Email", "priority": "low", "timeline": {"nested": ["object"]}, "expected_impact": "y"},
                          {"action": "Visit", "priority": "Medium", "timeline": "this week", "expected_impact": "z"},
                          "not an object"]},
             {"type": "high_value_at_risk", "title": "At risk", "description": "Big.", "priority": "critical",
              "confidence": 0.9, "actions": "call them"}]
            """
        let (report, database, _) = try await run([Self.message(answer)])
        #expect(report.outcome["insights_created"] == 2)
        #expect(report.outcome["model_fields_replaced"] == 4)
        let rows = try await database.connection.query(
            #"SELECT "type", actions::text AS actions FROM insights ORDER BY "type""#)
        let allowed: Set<String> = ["low", "medium", "high", "critical"]
        for row in rows {
            guard case .array(let actions)? = JSONValue.parse(try row.string("actions") ?? "") else {
                Issue.record("actions are not an array")
                continue
            }
            #expect(!actions.isEmpty)
            for action in actions {
                guard case .string(let priority)? = action["priority"], case .string? = action["timeline"],
                    case .string? = action["action"], case .string? = action["expected_impact"]
                else {
                    Issue.record("an action of the wrong shape was stored: \(action.text)")
                    continue
                }
                #expect(allowed.contains(priority))
            }
        }
        let stale = try #require(rows.first { try $0.string("type") == "stale" })
        let staleActions = try stale.string("actions") ?? ""
        #expect(staleActions.contains("\"Visit\"") && staleActions.contains("\"medium\""))
        #expect(!staleActions.contains("SUPER") && !staleActions.contains("nested"))
    }

    @Test("garbage: rule-based insights, marked as such")
    func garbage() async throws {
        let (report, database, _) = try await run([Self.message("I'm sorry, I can't help with that.")])
        #expect(report.outcome["insights_created"] == 2)
        let sources = try await Self.insights(database).map { $0[7] }
        #expect(sources == ["rules (the model's answer was unusable)", "rules (the model's answer was unusable)"])
    }

    @Test("429 with retry-after, then success: waits, retries, and uses the answer")
    func rateLimited() async throws {
        let (report, database, server) = try await run([
            [
                "status": 429, "headers": ["retry-after": "1"],
                "body": ["type": "error", "error": ["type": "rate_limit_error"]],
            ],
            Self.message(Self.good),
        ])
        let requests = try server.requests()
        #expect(requests.count == 2)
        // Timed by the server, between the two requests: the retry waited out the retry-after.
        if case .number(let first)? = requests.first?["at"], case .number(let second)? = requests.last?["at"] {
            #expect(second - first >= 1)
        } else {
            Issue.record("the test server logged no request times")
        }
        #expect(report.outcome["insights_created"] == 2)
        #expect(try await Self.insights(database).allSatisfy { $0[7] == "claude" })
    }

    @Test("500s until the retries run out: rule-based insights, the run still succeeds")
    func serverErrors() async throws {
        let (report, database, server) = try await run([["status": 500, "body": ["type": "error"]]])
        #expect(try server.requests().count == 4)
        #expect(report.failure == nil)
        #expect(report.outcome["insights_created"] == 2)
        #expect(try await Self.insights(database).allSatisfy { $0[7] == "rules (the model call failed)" })
    }
}
