import Engine
import Foundation
import JobTable
import Ledger
import PostgresClient
import RunnerSupport

/// VectorOS's insight generator: every deal not won or lost, in every workspace, read in keyset
/// pages; the five anomaly rules per deal; for each anomalous deal, insights from Claude (with
/// `ANTHROPIC_API_KEY`) or from the rules, written in one transaction per deal.
///
/// No new insight for a (deal, anomaly type) with an open one (new or viewed); a dismissed or
/// actioned one may come again once its quiet period is over. Each (deal, type, episode) is
/// claimed in the effects ledger first, so concurrent runs create it once; insight ids derive
/// from that key, so finishing a crashed run's claim cannot duplicate a row either.
public struct InsightGenerator: Agent {
    public static let name: AgentName = "insight-generator"
    public static let effectKind = EffectKind("insight", recovery: .redo(after: .seconds(600)))

    package struct Candidate: Sendable {
        package let deal: Deal
        package let anomalies: [Anomaly]
        /// Effect key per anomaly kind.
        package let keys: [Anomaly.Kind: String]
    }

    /// `with:` keys: `model`, `max_concurrency` (deals with the model at once, 4),
    /// `quiet_period` (7 days before a closed insight's pair may come again), `request_timeout`
    /// (60s per model call), `page_size` (1000 deals), `write_concurrency` (2 writer connections).
    public struct Options: AgentOptionSet {
        public var model = InsightWriter.defaultModel
        public var maxConcurrency = 4
        public var quietPeriod: Duration = .seconds(7 * 86_400)
        public var requestTimeout: Duration = .seconds(60)
        public var pageSize = 1000
        public var writeConcurrency = 2

        public init() {}

        public static let fields: [OptionField<Self>] = [
            .string("model", \.model), .positiveInteger("max_concurrency", \.maxConcurrency),
            .duration("quiet_period", \.quietPeriod), .duration("request_timeout", \.requestTimeout),
            .positiveInteger("page_size", \.pageSize), .positiveInteger("write_concurrency", \.writeConcurrency),
        ]
    }

    public let options: Options

    public init(options: Options = Options()) {
        self.options = options
    }

    public func run(_ context: AgentContext) async throws -> AgentReport {
        let (pageSize, quietPeriod) = (options.pageSize, options.quietPeriod)
        var counts = [
            "workspaces": 0, "deals_scanned": 0, "anomalous_deals": 0, "insights_created": 0,
            "skipped_duplicates": 0, "llm_calls": 0, "failures": 0,
        ]
        var bad = BadRows()
        var workspaces = Set<String>()
        var results: [InsightWriter.Result] = []
        let writer = InsightWriter(context: context, options: options)
        var phases = PhaseTimer()
        // Rule-based insights in the ledger's own database: each page is claimed and written by
        // one statement, on one of `write_concurrency` connections while the next page is read.
        let oneStatement = context.sharesLedgerDatabase && !writer.usesModel && !context.dryRun
        let writers = oneStatement ? try await Self.writerConnections(context, count: options.writeConcurrency) : []
        do {
            try await withThrowingTaskGroup(of: (Int, InsightWriter.Result).self) { group in
                var idle = Array(writers.indices)
                // One cursor over the open deals, each with its insight history: the server scans
                // deals and insights once, and this process holds one page.
                let clock = ContinuousClock()
                var readStart = clock.now
                try await context.forEachPage(
                    Self.pageQuery,
                    [.timestamp(context.now), .interval(quietPeriod), .array(Anomaly.Kind.allCases.map(\.rawValue))],
                    size: pageSize
                ) { rows in
                    phases.add("read_ms", clock.now - readStart)
                    defer { readStart = clock.now }
                    let (page, unusable, history) = Self.page(rows)
                    for (id, reason) in unusable { bad.add(id: id, reason: reason, logger: context.logger) }
                    counts["deals_scanned"]! += page.count
                    for deal in page { workspaces.insert(deal.workspaceID) }
                    let anomalous = page.compactMap { deal -> (Deal, [Anomaly])? in
                        let found = DealRules.anomalies(of: deal, now: context.now)
                        return found.isEmpty ? nil : (deal, found)
                    }
                    counts["anomalous_deals"]! += anomalous.count
                    let (candidates, skipped) = history.candidates(anomalous, scope: context.effectsScope)
                    counts["skipped_duplicates"]! += skipped
                    if context.dryRun {
                        counts["would_create_for_deals", default: 0] += candidates.count
                    } else if oneStatement {
                        if idle.isEmpty, let (index, result) = try await group.next() {
                            idle.append(index)
                            results.append(result)
                        }
                        let index = idle.removeLast()
                        group.addTask { (index, await writer.claimAndWriteRules(candidates, on: writers[index])) }
                    } else {
                        let claimed = try await phases.time("claim_ms") {
                            try await Self.claim(candidates, context: context)
                        }
                        counts["skipped_duplicates"]! +=
                            candidates.reduce(0) { $0 + $1.anomalies.count }
                            - claimed.reduce(0) { $0 + $1.anomalies.count }
                        results += await phases.time("write_ms") { await writer.write(claimed) }
                    }
                }
                for try await (_, result) in group { results.append(result) }
            }
        } catch {
            await Self.close(writers, keeping: context.database)
            throw error
        }
        await Self.close(writers, keeping: context.database)
        counts["workspaces"] = workspaces.count
        for result in results {
            counts["insights_created"]! += result.created
            counts["skipped_duplicates"]! += result.skipped
            counts["llm_calls"]! += result.llmCalls
            counts["failures"]! += result.failed
            if result.ruleFallbacks > 0 { counts["model_left_out", default: 0] += result.ruleFallbacks }
            if result.replacedFields > 0 { counts["model_fields_replaced", default: 0] += result.replacedFields }
            phases.add("write_ms", result.busy)
        }
        var report = ReportBuilder()
        for (name, count) in counts.sorted(by: { $0.key < $1.key }) { report.count(name, count) }
        bad.report(into: &report)
        report.note("source", writer.usesModel ? "claude" : "rules")
        let tokens = results.reduce((0, 0)) { ($0.0 + $1.inputTokens, $0.1 + $1.outputTokens) }
        report.metric("llm_input_tokens", Double(tokens.0))
        report.metric("llm_output_tokens", Double(tokens.1))
        phases.report(into: &report)
        if counts["failures"]! > 0 {
            report.failure =
                "\(counts["failures"]!) deal\(counts["failures"]! == 1 ? "" : "s") could not be written: "
                + (results.compactMap(\.error).first ?? "")
        }
        return report.report
    }

    /// The connections the one-statement path writes on: `write_concurrency` (default 2) of its
    /// own when the database's address is known, else the agent's one connection.
    package static func writerConnections(_ context: AgentContext, count: Int) async throws -> [PostgresConnection] {
        guard let url = context.databaseURL else { return [context.database] }
        var connections: [PostgresConnection] = []
        do {
            for _ in 0..<max(1, count) {
                connections.append(try await PostgresConnection.connect(url, cancelsWithTask: true))
            }
        } catch {
            for connection in connections { await connection.close() }
            throw error
        }
        return connections
    }

    /// Closes the writer connections the run opened (not the agent's own).
    package static func close(_ writers: [PostgresConnection], keeping own: PostgresConnection) async {
        for connection in writers where connection !== own { await connection.close() }
    }

    /// The open deals of every workspace in id order, each with its insights' history per
    /// anomaly type as `[type, blocked, latest closed id]` triples (`$1` now, `$2` the quiet
    /// period, `$3` the anomaly types). VectorOS has no index on "dealId", so the history is
    /// aggregated in one pass over `insights` and joined, not looked up per page.
    static let pageQuery = """
        WITH history AS (
            SELECT "dealId", json_agg(json_build_array("type", blocked, latest_closed)) AS pairs
            FROM (
                SELECT i."dealId", i."type",
                       bool_or(i."status" IN ('new', 'viewed')
                               OR i."updatedAt" > ($1::timestamptz AT TIME ZONE 'UTC') - $2::interval) AS blocked,
                       (array_agg(i."id" ORDER BY i."createdAt" DESC, i."id" DESC)
                            FILTER (WHERE i."status" NOT IN ('new', 'viewed')))[1] AS latest_closed
                FROM insights i
                WHERE i."type" = ANY($3::text[])
                GROUP BY i."dealId", i."type"
            ) pair
            GROUP BY "dealId"
        )
        SELECT d."id", d."workspaceId", d."title", d."value", d."stage", d."probability",
               CASE WHEN isfinite(d."closeDate") THEN extract(epoch FROM d."closeDate") END AS close_date,
               d."closeDate" IS NOT NULL AND NOT isfinite(d."closeDate") AS close_infinite,
               CASE WHEN isfinite(d."createdAt") THEN extract(epoch FROM d."createdAt") END AS created_at,
               CASE WHEN isfinite(d."updatedAt") THEN extract(epoch FROM d."updatedAt") END AS updated_at,
               h.pairs::text AS history
        FROM deals d LEFT JOIN history h ON h."dealId" = d."id"
        WHERE lower(d."stage") NOT IN ('won', 'lost')
        ORDER BY d."id"
        """

    /// Every open deal, read in one query (for tests and previews of small data).
    package static func deals(on database: PostgresConnection, now: Date = Date()) async throws -> [Deal] {
        let rows = try await database.query(
            pageQuery,
            [.timestamp(now), .interval(.seconds(7 * 86_400)), .array(Anomaly.Kind.allCases.map(\.rawValue))])
        return page(rows).deals
    }

    /// A page of open deals: those the rules can read, those they cannot (an infinite
    /// timestamp, a value that is not a finite number) with why, and the page's insight history.
    package static func page(_ rows: PostgresRows) -> (
        deals: [Deal], bad: [(id: String, reason: String)], history: InsightHistory
    ) {
        var history = InsightHistory()
        var deals: [Deal] = []
        var bad: [(String, String)] = []
        for row in rows {
            let id = (try? row.string("id", default: "")) ?? ""
            do {
                history.add(deal: id, history: try row.string("history"))
                let value = try row.double("value")
                guard let created = try row.double("created_at"), let updated = try row.double("updated_at"),
                    try row.bool("close_infinite") != true
                else {
                    bad.append((id, "a timestamp (createdAt, updatedAt or closeDate) is not finite"))
                    continue
                }
                guard value?.isFinite ?? true else {
                    bad.append((id, "the value is not a finite number"))
                    continue
                }
                deals.append(
                    Deal(
                        id: id, workspaceID: try row.string("workspaceId", default: ""),
                        title: try row.string("title", default: ""), value: value,
                        stage: try row.string("stage", default: ""), probability: try row.int("probability"),
                        closeDate: try row.double("close_date").map(Date.init(timeIntervalSince1970:)),
                        createdAt: Date(timeIntervalSince1970: created), updatedAt: Date(timeIntervalSince1970: updated)
                    ))
            } catch {
                bad.append((id, "\(error)"))
            }
        }
        return (deals, bad, history)
    }

    /// Records every (deal, type, episode) in the effects ledger in one statement; keeps the
    /// anomalies this run claimed, plus those a run that stopped early left pending.
    package static func claim(_ candidates: [Candidate], context: AgentContext) async throws -> [Candidate] {
        let mine = try await context.effects.claim(
            effectKind, keys: candidates.flatMap { $0.keys.values }, runID: context.runID, target: "insights")
        return candidates.compactMap { candidate in
            let anomalies = candidate.anomalies.filter { candidate.keys[$0.kind].map(mine.contains) ?? false }
            return anomalies.isEmpty ? nil : Candidate(deal: candidate.deal, anomalies: anomalies, keys: candidate.keys)
        }
    }
}

/// The insights a page's deals already have, per (deal, anomaly type): whether one blocks a
/// new insight (it is open, or closed within the quiet period) and the newest closed one, which
/// names the next episode. Read with the deals (``InsightGenerator/pageQuery``).
///
/// An episode is keyed by what started it: the deal, the type, and the insight it follows (the
/// newest closed one, or none). Counts would shift when a user deletes an insight and land on
/// a key already used; this key does not move. A pair that nothing blocks has no insight under
/// its key, so a claim found done for it (its insight was deleted) is redone, writing the
/// insight again under the same id.
package struct InsightHistory: Sendable {
    package struct Pair: Sendable {
        package var blocked: Bool
        /// The id of the newest (by creation: an edit must not move it) dismissed or actioned
        /// insight of the pair.
        package var latestClosed: String?
    }

    /// Keyed by deal id and type, separated by a unit separator.
    private(set) var pairs: [String: Pair] = [:]

    /// A deal's history as the page query aggregates it: `[[type, blocked, latest closed id]]`.
    package mutating func add(deal: String, history text: String?) {
        guard let text, case .array(let entries)? = JSONValue.parse(text) else { return }
        for case .array(let fields) in entries where fields.count == 3 {
            guard case .string(let type) = fields[0] else { continue }
            let latest: String? = if case .string(let id) = fields[2] { id } else { nil }
            pairs[Self.pair(deal, type)] = Pair(blocked: fields[1] == .bool(true), latestClosed: latest)
        }
    }

    package static func pair(_ deal: String, _ type: String) -> String { deal + "\u{1F}" + type }

    /// The effect key of an episode: deal, type, and the closed insight it follows.
    package static func key(scope: String, deal: String, type: String, after closed: String?) -> String {
        "\(scope):\(deal):\(type):after:\(closed ?? "none")"
    }

    /// The anomalies that may become insights, with their effect keys, and how many were
    /// dropped because an insight blocks them.
    package func candidates(_ anomalous: [(Deal, [Anomaly])], scope: String) -> ([InsightGenerator.Candidate], Int) {
        var skipped = 0
        var candidates: [InsightGenerator.Candidate] = []
        for (deal, anomalies) in anomalous {
            var keys: [Anomaly.Kind: String] = [:]
            let fresh = anomalies.filter { anomaly in
                let earlier = pairs[Self.pair(deal.id, anomaly.kind.rawValue)]
                if earlier?.blocked == true {
                    skipped += 1
                    return false
                }
                keys[anomaly.kind] = Self.key(
                    scope: scope, deal: deal.id, type: anomaly.kind.rawValue, after: earlier?.latestClosed)
                return true
            }
            if !fresh.isEmpty { candidates.append(.init(deal: deal, anomalies: fresh, keys: keys)) }
        }
        return (candidates, skipped)
    }
}
