import Foundation

/// VectorOS's insight generator: every deal not won or lost, in every workspace, read in keyset
/// pages; the five anomaly rules per deal; for each anomalous deal, insights from Claude (with
/// `ANTHROPIC_API_KEY`) or from the rules, written in one transaction per deal.
///
/// No new insight for a (deal, anomaly type) with an open one (new or viewed); a dismissed or
/// actioned one may come again once its quiet period is over. Each (deal, type, episode) is
/// claimed in the effects ledger first, so concurrent runs create it once; insight ids derive
/// from that key, so finishing a crashed run's claim cannot duplicate a row either.
public struct InsightGenerator: Agent {
    public static let effectKind = "insight"

    struct Candidate: Sendable {
        let deal: Deal
        let anomalies: [Anomaly]
        /// Effect key per anomaly kind.
        let keys: [Anomaly.Kind: String]
    }

    public init() {}

    public func run(_ context: AgentContext) async throws -> AgentReport {
        let pageSize = context.options.integer("page_size", default: 1000)
        let quietPeriod = context.options.duration("quiet_period", default: .seconds(7 * 86_400))
        var counts = [
            "workspaces": 0, "deals_scanned": 0, "anomalous_deals": 0, "insights_created": 0,
            "skipped_duplicates": 0, "llm_calls": 0, "failures": 0,
        ]
        var workspaces = Set<String>()
        var results: [InsightWriter.Result] = []
        let writer = InsightWriter(context: context)
        var cursor = ""
        let clock = ContinuousClock()
        var phases: [String: Duration] = [:]
        func timed<T>(_ phase: String, _ body: () async throws -> T) async rethrows -> T {
            let start = clock.now
            defer { phases[phase, default: .zero] += clock.now - start }
            return try await body()
        }
        // Page by page: rules, de-duplication, claim and write, so memory stays bounded.
        while true {
            let page = try await timed("read_ms") {
                try await Self.page(after: cursor, limit: pageSize, on: context.database)
            }
            guard let last = page.last else { break }
            cursor = last.id
            counts["deals_scanned"]! += page.count
            for deal in page { workspaces.insert(deal.workspaceID) }
            let anomalous = page.compactMap { deal -> (Deal, [Anomaly])? in
                let found = DealRules.anomalies(of: deal, now: context.now)
                return found.isEmpty ? nil : (deal, found)
            }
            counts["anomalous_deals"]! += anomalous.count
            let (candidates, skipped) = try await timed("dedupe_ms") {
                try await Self.withoutOpenInsights(anomalous, quietPeriod: quietPeriod, context: context)
            }
            counts["skipped_duplicates"]! += skipped
            if context.dryRun {
                counts["would_create_for_deals", default: 0] += candidates.count
                continue
            }
            let claimed = try await timed("claim_ms") { try await Self.claim(candidates, context: context) }
            counts["skipped_duplicates"]! +=
                candidates.reduce(0) { $0 + $1.anomalies.count } - claimed.reduce(0) { $0 + $1.anomalies.count }
            results += await timed("write_ms") { await writer.write(claimed) }
        }
        counts["workspaces"] = workspaces.count
        for result in results {
            counts["insights_created"]! += result.created
            counts["llm_calls"]! += result.llmCalls
            counts["failures"]! += result.failed ? 1 : 0
        }
        var report = Self.report(counts)
        report.outcome["source"] = (context.environment["ANTHROPIC_API_KEY"] ?? "").isEmpty ? "rules" : "claude"
        let tokens = results.reduce((0, 0)) { ($0.0 + $1.inputTokens, $0.1 + $1.outputTokens) }
        report.metrics += [Metric("llm_input_tokens", Double(tokens.0)), Metric("llm_output_tokens", Double(tokens.1))]
        report.metrics += phases.sorted { $0.key < $1.key }.map { Metric($0.key, $0.value.milliseconds, unit: "ms") }
        if counts["failures"]! > 0 {
            report.failure =
                "\(counts["failures"]!) deal\(counts["failures"]! == 1 ? "" : "s") could not be written: "
                + (results.compactMap(\.error).first ?? "")
        }
        return report
    }

    static func report(_ counts: [String: Int]) -> AgentReport {
        AgentReport(
            outcome: counts.mapValues { .number(Double($0)) },
            metrics: counts.sorted { $0.key < $1.key }.map { Metric($0.key, Double($0.value)) })
    }

    /// One keyset page of open deals, in every workspace.
    static func page(after cursor: String, limit: Int, on database: PostgresConnection) async throws -> [Deal] {
        try await database.query(
            """
            SELECT d."id", d."workspaceId", d."title", d."value", d."stage", d."probability",
                   extract(epoch FROM d."closeDate") AS close_date, extract(epoch FROM d."createdAt") AS created_at,
                   extract(epoch FROM d."updatedAt") AS updated_at
            FROM deals d
            WHERE d."id" > $1 AND lower(d."stage") NOT IN ('won', 'lost')
            ORDER BY d."id"
            LIMIT $2::integer
            """, [PostgresValue(cursor), .int(limit)]
        ).map { row in
            Deal(
                id: try row.string("id", default: ""), workspaceID: try row.string("workspaceId", default: ""),
                title: try row.string("title", default: ""), value: try row.double("value"),
                stage: try row.string("stage", default: ""), probability: try row.int("probability"),
                closeDate: try row.double("close_date").map(Date.init(timeIntervalSince1970:)),
                createdAt: Date(timeIntervalSince1970: try row.double("created_at") ?? 0),
                updatedAt: Date(timeIntervalSince1970: try row.double("updated_at") ?? 0))
        }
    }

    /// Drops anomalies that already have an open insight, or a closed one still inside its quiet
    /// period; one query per page. Returns the rest with their effect keys, and how many it dropped.
    static func withoutOpenInsights(
        _ anomalous: [(Deal, [Anomaly])], quietPeriod: Duration, context: AgentContext
    ) async throws -> ([Candidate], Int) {
        guard !anomalous.isEmpty else { return ([], 0) }
        let rows = try await context.database.query(
            """
            SELECT "dealId", "type",
                   bool_or("status" IN ('new', 'viewed')) AS open,
                   bool_or("status" NOT IN ('new', 'viewed')
                           AND "updatedAt" > ($2::timestamptz AT TIME ZONE 'UTC') - $3::interval) AS quiet,
                   count(*) AS earlier
            FROM insights WHERE "dealId" = ANY($1::text[])
            GROUP BY "dealId", "type"
            """, [.array(anomalous.map(\.0.id)), .timestamp(context.now), .interval(quietPeriod)])
        var blocked = Set<String>()
        var earlier: [String: Int] = [:]
        for row in rows {
            let pair = "\(try row.string("dealId", default: "")) \(try row.string("type", default: ""))"
            if try row.bool("open") == true || row.bool("quiet") == true { blocked.insert(pair) }
            earlier[pair] = try row.int("earlier") ?? 0
        }
        var skipped = 0
        var candidates: [Candidate] = []
        for (deal, anomalies) in anomalous {
            var keys: [Anomaly.Kind: String] = [:]
            let fresh = anomalies.filter { anomaly in
                let pair = "\(deal.id) \(anomaly.kind.rawValue)"
                if blocked.contains(pair) {
                    skipped += 1
                    return false
                }
                keys[anomaly.kind] = "\(context.job):\(deal.id):\(anomaly.kind.rawValue):\(earlier[pair] ?? 0)"
                return true
            }
            if !fresh.isEmpty { candidates.append(Candidate(deal: deal, anomalies: fresh, keys: keys)) }
        }
        return (candidates, skipped)
    }

    /// Records every (deal, type, episode) in the effects ledger in one statement; keeps the
    /// anomalies this run claimed, plus those a run that stopped early left pending.
    static func claim(_ candidates: [Candidate], context: AgentContext) async throws -> [Candidate] {
        let keys = candidates.flatMap { $0.keys.values }
        guard !keys.isEmpty else { return [] }
        let rows = try await context.effects.connection.query(
            """
            WITH inserted AS (
                INSERT INTO runner.effects (kind, key, run_id, status, target)
                SELECT $1, k, $2::bigint, 'pending', 'insights' FROM unnest($3::text[]) AS k
                ON CONFLICT (kind, key) DO NOTHING
                RETURNING key
            )
            SELECT key FROM inserted
            UNION
            SELECT key FROM runner.effects
            WHERE kind = $1 AND key = ANY($3::text[]) AND status = 'pending' AND created_at < now() - interval '10 minutes'
            """, [PostgresValue(effectKind), .int64(context.runID), .array(keys)])
        let mine = Set(try rows.compactMap { try $0.string("key") })
        return candidates.compactMap { candidate in
            let anomalies = candidate.anomalies.filter { candidate.keys[$0.kind].map(mine.contains) ?? false }
            return anomalies.isEmpty ? nil : Candidate(deal: candidate.deal, anomalies: anomalies, keys: candidate.keys)
        }
    }
}
