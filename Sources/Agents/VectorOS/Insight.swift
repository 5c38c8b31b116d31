import Engine
import Foundation
import PostgresClient
import RunnerSupport

/// One insight as VectorOS stores it.
public struct Insight: Sendable, Equatable {
    public var type: String
    public var title: String
    public var description: String
    public var priority: Anomaly.Priority
    public var confidence: Double
    public var actions: [JSONValue]
    public var source: String

    /// Clamps what a model returned to what VectorOS accepts.
    package init(
        type: String, title: String, description: String, priority: Anomaly.Priority, confidence: Double,
        actions: [JSONValue], source: String
    ) {
        self.type = type
        self.title = Self.cut(title, to: 100)
        self.description = Self.cut(description, to: 300)
        self.priority = priority
        self.confidence = min(1, max(0, confidence.isFinite ? confidence : 0.5))
        self.actions = actions
        self.source = source
    }

    /// At most `limit` characters. Counting characters walks grapheme clusters, so text no
    /// longer in bytes than the limit (nearly every title) is kept without counting.
    package static func cut(_ text: String, to limit: Int) -> String {
        text.utf8.count <= limit ? text : String(text.prefix(limit))
    }

    /// The rule-based insight for one anomaly.
    package static func fromRule(_ anomaly: Anomaly, deal: Deal) -> Insight {
        let (title, action): (String, String)
        switch anomaly.kind {
        case .stale: (title, action) = ("Stale deal: \(deal.title)", "Contact the buyer this week to re-engage")
        case .stuckInStage:
            (title, action) = (
                "Stuck in \(deal.stage): \(deal.title)", "Agree the next step that moves it out of \(deal.stage)"
            )
        case .lowProbability:
            (title, action) = ("Low win probability: \(deal.title)", "Requalify the deal or close it out")
        case .highValueAtRisk:
            (title, action) = ("High-value deal at risk: \(deal.title)", "Escalate to the account owner's manager")
        case .closeDateRisk:
            (title, action) = ("Close date at risk: \(deal.title)", "Confirm the close date and the decision process")
        }
        return Insight(
            type: anomaly.kind.rawValue, title: title, description: "\(deal.title): \(anomaly.detail).",
            priority: anomaly.priority, confidence: 0.8,
            actions: [
                [
                    "action": .string(action), "priority": .string(anomaly.priority.rawValue), "timeline": "this week",
                    "expected_impact": "keeps the deal moving",
                ]
            ], source: "rules")
    }
}

/// Writes a deal's insights in one transaction, with ids derived from their effect keys.
package struct InsightWriter: Sendable {
    package struct Result: Sendable {
        package var created = 0
        package var llmCalls = 0
        package var inputTokens = 0
        package var outputTokens = 0
        /// Anomalies another run had claimed already.
        package var skipped = 0
        /// Deals whose insights could not be written.
        package var failed = 0
        package var error: String?
        /// Time spent writing on a connection of its own (the one-statement path).
        package var busy: Duration = .zero
        /// Anomalies the model's answer left out, written from the rules instead.
        package var ruleFallbacks = 0
        /// Fields of the model's answer that failed the insight shape and were replaced by the rule's.
        package var replacedFields = 0
    }

    package let context: AgentContext
    package let options: InsightGenerator.Options

    /// With `ANTHROPIC_API_KEY` set, insights come from Claude.
    package var usesModel: Bool { context.clients.model != nil }

    /// Writes every candidate; with `ANTHROPIC_API_KEY`, up to `max_concurrency` deals at a time
    /// are with the model.
    package func write(_ candidates: [InsightGenerator.Candidate]) async -> [Result] {
        guard let access = context.clients.model else { return [await writeRules(candidates)] }
        let (limit, model, timeout) = (max(1, options.maxConcurrency), options.model, options.requestTimeout)
        return await withTaskGroup(of: Result.self) { group in
            var pending = candidates.makeIterator()
            func start(_ candidate: InsightGenerator.Candidate) {
                // A client per call: each runs on a thread of its own.
                let client = AnthropicClient(
                    apiKey: access.apiKey, baseURL: access.baseURL, model: model, timeout: timeout,
                    backoff: access.backoff, deadline: context.deadline)
                group.addTask { await self.write(candidate, model: client) }
            }
            for _ in 0..<limit {
                guard let candidate = pending.next() else { break }
                start(candidate)
            }
            var results: [Result] = []
            for await result in group {
                results.append(result)
                if let candidate = pending.next() { start(candidate) }
            }
            return results
        }
    }

    package static let defaultModel = "claude-sonnet-4-5"

    /// Rule-based insights for a whole page in one statement: one transaction holding every
    /// deal's insights, so each deal's are still written all or nothing.
    package func writeRules(_ candidates: [InsightGenerator.Candidate]) async -> Result {
        var result = Result()
        guard !candidates.isEmpty else { return result }
        let batches = candidates.map { candidate in
            (candidate, candidate.anomalies.map { Insight.fromRule($0, deal: candidate.deal) })
        }
        do {
            result.created = try await insert(batches)
            try await markDone(candidates)
        } catch {
            result.failed = candidates.count
            result.error = "\(candidates.count) deals: \(error)"
        }
        return result
    }

    /// Claims and writes a page of rule-based insights in one statement, so one transaction:
    /// each (deal, type, episode) is recorded in the effects ledger as done and its insight
    /// inserted, or neither. Needs the ledger in this database.
    ///
    /// A key another run holds is skipped; one left pending by a run that stopped early is
    /// finished (``Effects/claimAndWrite(_:runID:input:write:parameters:on:)``).
    package func claimAndWriteRules(_ candidates: [InsightGenerator.Candidate], on connection: PostgresConnection) async
        -> Result
    {
        var result = Result()
        guard !candidates.isEmpty else { return result }
        let started = ContinuousClock.now
        var rows = InsightRows()
        for candidate in candidates {
            rows.append(candidate, candidate.anomalies.map { Insight.fromRule($0, deal: candidate.deal) })
        }
        do {
            let (claimed, written) = try await context.effects.claimAndWrite(
                InsightGenerator.effectKind, runID: context.runID, input: Self.input(from: 3),
                write: { claimed in
                    guard let claimed else { return Self.insertInput }
                    return "\(Self.insertInput) WHERE i.key IN \(claimed) ON CONFLICT (\"id\") DO NOTHING"
                }, parameters: rows.parameters, on: connection)
            result.created = written
            result.skipped = rows.count - claimed
        } catch {
            result.failed = candidates.count
            result.error = "\(candidates.count) deals: \(error)"
        }
        result.busy = ContinuousClock.now - started
        return result
    }

    /// A page's insights as the CTE `input`: `InsightRows.parameters` from `$first` on.
    package static func input(from first: Int) -> String {
        let types = ["text", "text", "text", "text", "text", "text", "float8", "text", "text", "text", "text"]
        let arrays = types.enumerated().map { "$\(first + $0.offset)::\($0.element)[]" }.joined(separator: ", ")
        return """
            input AS (
                SELECT * FROM unnest(\(arrays))
                    AS i(key, id, type, title, description, priority, confidence, data, actions, workspace, deal)
            )
            """
    }

    /// Inserts the `input` rows into VectorOS's `insights`; the deal id and workspace come
    /// from the runner, never a model.
    static let insertInput = """
        INSERT INTO insights ("id", "type", "title", "description", "priority", "confidence", "data",
                              "actions", "workspaceId", "dealId", "status", "updatedAt")
        SELECT i.id, i.type, i.title, i.description, i.priority, i.confidence, i.data::jsonb,
               i.actions::jsonb, i.workspace, i.deal, 'new', now() AT TIME ZONE 'UTC'
        FROM input i
        """

    private func markDone(_ candidates: [InsightGenerator.Candidate]) async throws {
        try await context.effects.markDone(
            InsightGenerator.effectKind.name, keys: candidates.flatMap { Array($0.keys.values) })
    }

    /// One deal through the model: its insights, or the rules' when the call fails or the
    /// answer is unusable (marked so in `data.source`); written in one transaction.
    package func write(_ candidate: InsightGenerator.Candidate, model: AnthropicClient) async -> Result {
        var result = Result(llmCalls: 1)
        let deal = candidate.deal
        var insights: [Insight]
        var fallback: String?
        do {
            let answer = try await model.message(
                system: InsightPrompt.system,
                prompt: InsightPrompt.prompt(for: deal, anomalies: candidate.anomalies, now: context.now))
            result.inputTokens = answer.inputTokens
            result.outputTokens = answer.outputTokens
            let parsed = InsightPrompt.parse(answer.text, anomalies: candidate.anomalies, deal: deal)
            insights = parsed?.insights ?? []
            result.replacedFields = parsed?.replaced ?? 0
            if insights.isEmpty { fallback = "rules (the model's answer was unusable)" }
            // Every claimed anomaly gets its insight: those the model left out take the rule's.
            for anomaly in candidate.anomalies where !insights.contains(where: { $0.type == anomaly.kind.rawValue }) {
                guard fallback == nil else { break }
                var insight = Insight.fromRule(anomaly, deal: deal)
                insight.source = "rules (the model left this anomaly out)"
                insights.append(insight)
                result.ruleFallbacks += 1
            }
        } catch {
            context.logger.warning(
                "Claude call failed; rule-based insights instead",
                metadata: ["deal_id": "\(deal.id)", "error": "\(error)"])
            insights = []
            fallback = "rules (the model call failed)"
        }
        if let fallback {
            insights = candidate.anomalies.map {
                var insight = Insight.fromRule($0, deal: deal)
                insight.source = fallback
                return insight
            }
        }
        do {
            result.created = try await insert([(candidate, insights)])
            try await markDone([candidate])
        } catch {
            result.failed = 1
            result.error = "deal \(deal.id): \(error)"
        }
        return result
    }

    /// One statement, so one transaction, for the given deals' insights.
    /// Returns how many rows were inserted (an id already there is skipped, not counted).
    @discardableResult
    package func insert(_ batches: [(InsightGenerator.Candidate, [Insight])]) async throws -> Int {
        var rows = InsightRows()
        for (candidate, insights) in batches { rows.append(candidate, insights) }
        guard rows.count > 0 else { return 0 }
        return try await context.database.query(
            "WITH \(Self.input(from: 1)) \(Self.insertInput) ON CONFLICT (\"id\") DO NOTHING", rows.parameters
        ).affectedRows
    }

    /// A stable id from an effect key, so redoing a claim cannot insert twice.
    package static func id(for key: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var second: UInt64 = 0x8422_2325_cbf2_9ce4
        for byte in key.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            second = (second ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 &+ 7
        }
        return "ins_" + String(hash, radix: 16) + String(second, radix: 16)
    }
}

/// Insights as columns, for inserting many in one statement through `unnest`.
package struct InsightRows {
    private var keys: [String?] = [], ids: [String?] = [], types: [String?] = [], titles: [String?] = []
    private var descriptions: [String?] = [], priorities: [String?] = [], confidences: [String?] = []
    private var data: [String?] = [], actions: [String?] = [], workspaceIDs: [String?] = [], dealIDs: [String?] = []

    package var count: Int { ids.count }

    /// A deal's insights, each with the effect key of its anomaly type and an id derived from it.
    package mutating func append(_ candidate: InsightGenerator.Candidate, _ insights: [Insight]) {
        let deal = candidate.deal
        for (index, insight) in insights.enumerated() {
            let key = candidate.keys[Anomaly.Kind(rawValue: insight.type) ?? .stale] ?? deal.id
            keys.append(key)
            ids.append(InsightWriter.id(for: key + "#\(index)"))
            types.append(insight.type)
            titles.append(insight.title)
            descriptions.append(insight.description)
            priorities.append(insight.priority.rawValue)
            confidences.append(String(insight.confidence))
            data.append(
                JSONValue.objectText([
                    ("anomaly", .string(insight.type)), ("deal_id", .string(deal.id)),
                    ("deal_title", .string(deal.title)), ("deal_value", deal.value.map(JSONValue.number) ?? .null),
                    ("source", .string(insight.source)),
                ]))
            actions.append(JSONValue.array(insight.actions).text)
            workspaceIDs.append(deal.workspaceID)
            dealIDs.append(deal.id)
        }
    }

    /// The columns in the order of `InsightWriter.input`: key, id, type, title, description,
    /// priority, confidence, data, actions, workspace, deal.
    package var parameters: [PostgresValue] {
        [
            .array(keys), .array(ids), .array(types), .array(titles), .array(descriptions), .array(priorities),
            .array(confidences), .array(data), .array(actions), .array(workspaceIDs), .array(dealIDs),
        ]
    }
}
