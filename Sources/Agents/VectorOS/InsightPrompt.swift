import Foundation
import Ledger
import RunnerSupport

/// What the insight generator asks Claude, and how it reads the answer.
package enum InsightPrompt {
    static let system = """
        You are a sales operations analyst. Given one deal and the anomalies found in it, write 2 or 3 \
        short, specific insights that help the sales team act. Answer with JSON only: an array of \
        objects with the keys "type" (one of the anomaly types given), "title" (at most 100 \
        characters), "description" (at most 300 characters), "priority" (low, medium, high or \
        critical), "confidence" (0 to 1) and "actions" (an array of objects with "action", \
        "priority", "timeline" and "expected_impact").
        """

    package static func prompt(for deal: Deal, anomalies: [Anomaly], now: Date) -> String {
        let facts: JSONValue = [
            "title": .string(deal.title), "stage": .string(deal.stage),
            "value": deal.value.map(JSONValue.number) ?? .null,
            "probability": deal.probability.map { .number(Double($0)) } ?? .null,
            "close_date": deal.closeDate.map { .string(Ledger.slotKey(for: $0)) } ?? .null,
            "days_since_activity": .number(Double(DealRules.wholeDays(from: deal.updatedAt, to: now))),
            "days_since_created": .number(Double(DealRules.wholeDays(from: deal.createdAt, to: now))),
            "anomalies": .array(
                anomalies.map {
                    [
                        "type": .string($0.kind.rawValue), "priority": .string($0.priority.rawValue),
                        "detail": .string($0.detail),
                    ]
                }),
        ]
        return "Deal and anomalies:\n\(facts.text)\n\nAnswer with the JSON array only."
    }

    /// The insights in a model's answer: fenced or bare JSON, one object or an array (or an
    /// object holding "insights"). Out-of-range fields are clamped; anything naming a deal is
    /// ignored. Nil when nothing usable is there.
    package static func parse(_ text: String, anomalies: [Anomaly]) -> [Insight]? {
        parse(text, anomalies: anomalies, deal: nil)?.insights
    }

    /// As ``parse(_:anomalies:)``, checking each insight against the shape VectorOS reads: an
    /// action that is not `{action, priority, timeline, expected_impact}` with a known priority
    /// and text fields is replaced by the rule's action for that anomaly; `replaced` counts them.
    package static func parse(_ text: String, anomalies: [Anomaly], deal: Deal?) -> (insights: [Insight], replaced: Int)? {
        guard let json = extractJSON(text) else { return nil }
        var items: [JSONValue]
        switch json {
        case .array(let array): items = array
        case .object:
            if case .array(let array)? = json["insights"] { items = array } else { items = [json] }
        default: return nil
        }
        items = Array(items.prefix(3))
        let kinds = anomalies.map(\.kind.rawValue)
        var insights: [Insight] = []
        var replaced = 0
        for (index, item) in items.enumerated() {
            guard case .string(let title)? = item["title"], !title.trimmingCharacters(in: .whitespaces).isEmpty,
                case .string(let description)? = item["description"]
            else { continue }
            let anomaly = anomalies[index % anomalies.count]
            var type = anomaly.kind.rawValue
            if case .string(let named)? = item["type"], kinds.contains(named) { type = named }
            // Unless the model gives a valid priority, the insight takes its anomaly's.
            var priority = anomalies.first { $0.kind.rawValue == type }?.priority ?? anomaly.priority
            if case .string(let named)? = item["priority"], let parsed = Anomaly.Priority(rawValue: named.lowercased())
            {
                priority = parsed
            }
            var confidence = 0.7
            switch item["confidence"] {
            case .number(let value)?: confidence = value
            case .string(let value)?: confidence = Double(value) ?? 0.7
            default: break
            }
            let ruleActions: [JSONValue] = {
                guard let deal, let anomaly = anomalies.first(where: { $0.kind.rawValue == type }) else { return [] }
                return Insight.fromRule(anomaly, deal: deal).actions
            }()
            var actions: [JSONValue] = []
            if case .array(let list)? = item["actions"] {
                var ruleActionAdded = false
                for action in list.prefix(5) {
                    if let valid = Self.action(action) {
                        actions.append(valid)
                    } else {
                        replaced += 1
                        if !ruleActionAdded { actions += ruleActions.prefix(1) }
                        ruleActionAdded = true
                    }
                }
            } else if item["actions"] != nil {
                replaced += 1
                actions = ruleActions
            }
            insights.append(
                Insight(
                    type: type, title: title.trimmingCharacters(in: .whitespaces), description: description,
                    priority: priority, confidence: confidence, actions: actions, source: "claude"))
        }
        return insights.isEmpty ? nil : (insights, replaced)
    }

    /// One action as VectorOS reads it, or nil: `action` a non-empty string, `priority` one of
    /// low, medium, high, critical, `timeline` and `expected_impact` strings (or missing); each
    /// text cut to its limit.
    package static func action(_ value: JSONValue) -> JSONValue? {
        guard case .object(let fields) = value, case .string(let what)? = fields["action"],
            !what.trimmingCharacters(in: .whitespaces).isEmpty,
            case .string(let priorityName)? = fields["priority"],
            let priority = Anomaly.Priority(rawValue: priorityName.lowercased())
        else { return nil }
        func text(_ key: String, default fallback: String, limit: Int) -> String? {
            switch fields[key] {
            case nil, .null?: return fallback
            case .string(let text)?: return Insight.cut(text, to: limit)
            default: return nil
            }
        }
        guard let timeline = text("timeline", default: "this week", limit: 100),
            let impact = text("expected_impact", default: "", limit: 200)
        else { return nil }
        return [
            "action": .string(Insight.cut(what, to: 200)), "priority": .string(priority.rawValue),
            "timeline": .string(timeline), "expected_impact": .string(impact),
        ]
    }

    /// The first JSON value in `text`: inside a ``` fence if there is one, else from the first
    /// `[` or `{` to the last `]` or `}`.
    package static func extractJSON(_ text: String) -> JSONValue? {
        var body = Substring(text)
        if let fence = body.range(of: "```") {
            var inner = body[fence.upperBound...]
            if let newline = inner.firstIndex(of: "\n") { inner = inner[inner.index(after: newline)...] }
            if let close = inner.range(of: "```") { body = inner[..<close.lowerBound] }
        }
        guard let start = body.firstIndex(where: { $0 == "[" || $0 == "{" }),
            let end = body.lastIndex(where: { $0 == "]" || $0 == "}" }), start < end
        else { return nil }
        return JSONValue.parse(String(body[start...end]))
    }
}
