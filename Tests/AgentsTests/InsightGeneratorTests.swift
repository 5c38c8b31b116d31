import Foundation
@testable import JobTable
import Logging
import Testing

@testable import Engine
@testable import PostgresClient
@testable import Ledger
@testable import VectorOS
import TestSupport

@Suite("Insight generator (rule-based)")
struct InsightGeneratorTests {
    /// Three workspaces, 40 open deals (more than the old 20-deal cap) plus won and lost ones.
    static let seed = """
        INSERT INTO users ("id", "email", "updatedAt") VALUES ('u1', 'owner@vector.example', NOW);
        INSERT INTO workspaces ("id", "name", "slug", "ownerId", "updatedAt") VALUES
            ('w1', 'Acme', 'acme', 'u1', NOW), ('w2', 'Globex', 'globex', 'u1', NOW), ('w3', 'Initech', 'initech', 'u1', NOW);
        INSERT INTO deals ("id", "title", "value", "stage", "probability", "closeDate", "workspaceId", "createdAt", "updatedAt")
        SELECT 'd' || lpad(g::text, 3, '0'), 'Deal ' || g,
               CASE WHEN g % 5 = 0 THEN NULL ELSE 2000 * g END,
               (ARRAY['lead', 'qualified', 'proposal', 'negotiation'])[g % 4 + 1],
               CASE WHEN g % 7 = 0 THEN NULL ELSE (g * 13) % 100 END,
               CASE WHEN g % 3 = 0 THEN NOW + (g % 20) * interval '1 day' + interval '1 hour' END,
               'w' || (g % 3 + 1), NOW - (g % 45) * interval '1 day' - interval '1 hour',
               NOW - (g % 20) * interval '1 day' - interval '1 hour'
        FROM generate_series(1, 40) g;
        INSERT INTO deals ("id", "title", "value", "stage", "probability", "workspaceId", "createdAt", "updatedAt") VALUES
            ('won1', 'Won long ago', 90000, 'won', 100, 'w1', NOW - interval '90 days', NOW - interval '60 days'),
            ('lost1', 'Lost long ago', 90000, 'lost', 0, 'w2', NOW - interval '90 days', NOW - interval '60 days');
        """

    static func database(_ label: String) async throws -> ZoarkDatabase {
        let database = try await ZoarkDatabase(label)
        try await database.connection.execute(VectorOSSchema.sql)
        try await database.seed(Self.seed)
        return database
    }

    /// How many insights the rules, applied here in Swift, find among the open deals.
    static func expectedInsights(_ database: ZoarkDatabase, now: Date) async throws -> Int {
        let deals = try await InsightGenerator.deals(on: database.connection)
        return deals.reduce(0) { $0 + DealRules.anomalies(of: $1, now: now).count }
    }

    @Test(
        "scans every open deal of every workspace, writes rule-based insights, and nothing twice",
        arguments: [false, true])
    func scanAndDeduplicate(sharesLedger: Bool) async throws {
        let database = try await Self.database("insights")
        let context = database.context(
            job: "deal-insights", runID: try await database.newRun("i"), sharesLedger: sharesLedger)
        let first = try await InsightGenerator(options: .init(AgentOptions(["page_size": .integer(7)]))).run(context)
        #expect(first.outcome["workspaces"] == 3)
        #expect(first.outcome["deals_scanned"] == 40)
        #expect(first.failure == nil)
        let expected = try await Self.expectedInsights(database, now: context.now)
        #expect(expected > 20)
        #expect(first.outcome["insights_created"] == .number(Double(expected)))
        #expect(try await database.count("SELECT count(*) FROM insights") == expected)
        #expect(try await database.count(#"SELECT count(*) FROM insights WHERE "dealId" IN ('won1', 'lost1')"#) == 0)
        #expect(try await database.count(#"SELECT count(DISTINCT "workspaceId") FROM insights"#) == 3)
        // Every insight has its effect, done.
        #expect(
            try await database.count("SELECT count(*) FROM runner.effects WHERE kind = 'insight' AND status = 'sent'")
                == expected)
        let sample = try #require(
            try await database.connection.query(
                #"SELECT "workspaceId", data->>'deal_id' AS deal, data->>'source' AS source, jsonb_array_length(actions) AS actions FROM insights WHERE "dealId" = 'd020'"#
            ).first)
        #expect(try sample.string("deal") == "d020")
        #expect(try sample.string("workspaceId") == "w3")
        #expect(try sample.string("source") == "rules")
        #expect(try sample.int("actions") == 1)

        let second = try await InsightGenerator().run(
            database.context(
                job: "deal-insights", runID: try await database.newRun("i"),
                sharesLedger: sharesLedger))
        #expect(second.outcome["insights_created"] == 0)
        #expect(second.outcome["skipped_duplicates"] == .number(Double(expected)))
        #expect(try await database.count("SELECT count(*) FROM insights") == expected)
    }

    @Test("a page that cannot be written claims nothing, fails the run, and the next run writes it")
    func pageAllOrNothing() async throws {
        let database = try await Self.database("insightsatomic")
        // VectorOS refusing one deal's insights: its page's statement fails.
        try await database.connection.execute(
            """
            CREATE FUNCTION refuse_d020() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW."dealId" = 'd020' THEN RAISE EXCEPTION 'insights for d020 refused'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_d020 BEFORE INSERT ON insights FOR EACH ROW EXECUTE FUNCTION refuse_d020();
            """)
        let options = InsightGenerator.Options(AgentOptions(["page_size": .integer(7)]))
        let failed = try await InsightGenerator(options: options).run(
            database.context(
                job: "deal-insights", runID: try await database.newRun("i"), sharesLedger: true))
        let failure = try #require(failed.failure)
        #expect(failure.contains("insights for d020 refused"))
        // d015...d021 share a page (ids in order, seven a page): none of that page is written or claimed.
        let pageDeals = "'d015', 'd016', 'd017', 'd018', 'd019', 'd020', 'd021'"
        #expect(try await database.count(#"SELECT count(*) FROM insights WHERE "dealId" IN (\#(pageDeals))"#) == 0)
        #expect(
            try await database.count(
                "SELECT count(*) FROM runner.effects WHERE split_part(key, ':', 2) IN (\(pageDeals))") == 0)
        let expected = try await Self.expectedInsights(database, now: Date())
        let written = try await database.count("SELECT count(*) FROM insights")
        #expect(written > 0 && written < expected)
        #expect(failed.outcome["insights_created"] == .number(Double(written)))
        #expect(failed.outcome["failures"] != 0)

        try await database.connection.execute("DROP TRIGGER refuse_d020 ON insights")
        let next = try await InsightGenerator(options: options).run(
            database.context(
                job: "deal-insights", runID: try await database.newRun("i"), sharesLedger: true))
        #expect(next.failure == nil)
        #expect(next.outcome["insights_created"] == .number(Double(expected - written)))
        #expect(try await database.count("SELECT count(*) FROM insights") == expected)
    }

    @Test("a claim left pending by a run that stopped is finished after ten minutes, not before")
    func stalePendingClaim() async throws {
        let database = try await Self.database("insightspending")
        let deals = try await InsightGenerator.deals(on: database.connection)
        let anomalous = deals.compactMap { deal in
            DealRules.anomalies(of: deal, now: Date()).first.map { (deal.id, $0.kind.rawValue) }
        }
        try #require(anomalous.count >= 2)
        let (stale, fresh) = (anomalous[0], anomalous[1])
        // A run that claimed two insights, then died before writing them.
        let crashed = try await database.newRun("i")
        try await database.connection.query(
            """
            INSERT INTO runner.effects (namespace, kind, key, run_id, status, target, created_at) VALUES
                ('default', 'insight', $1, $3::bigint, 'pending', 'insights', now() - interval '11 minutes'),
                ('default', 'insight', $2, $3::bigint, 'pending', 'insights', now() - interval '1 minute')
            """,
            [
                PostgresValue(InsightHistory.key(scope: "deal-insights", deal: stale.0, type: stale.1, after: nil)),
                PostgresValue(InsightHistory.key(scope: "deal-insights", deal: fresh.0, type: fresh.1, after: nil)),
                .int64(crashed),
            ])
        let report = try await InsightGenerator().run(
            database.context(
                job: "deal-insights", runID: try await database.newRun("i"),
                sharesLedger: true))
        let expected = try await Self.expectedInsights(database, now: Date())
        #expect(report.outcome["insights_created"] == .number(Double(expected - 1)))
        #expect(report.outcome["skipped_duplicates"] == 1)
        #expect(
            try await database.count(
                #"SELECT count(*) FROM insights WHERE "dealId" = '\#(stale.0)' AND "type" = '\#(stale.1)'"#) == 1)
        #expect(
            try await database.count(
                #"SELECT count(*) FROM insights WHERE "dealId" = '\#(fresh.0)' AND "type" = '\#(fresh.1)'"#) == 0)
        #expect(try await database.count("SELECT count(*) FROM runner.effects WHERE status = 'pending'") == 1)
    }

    @Test("a dismissed insight comes back only after its quiet period")
    func quietPeriod() async throws {
        let database = try await Self.database("insightsquiet")
        let options = InsightGenerator.Options(AgentOptions(["quiet_period": .duration(.seconds(3 * 86_400))]))
        _ = try await InsightGenerator(options: options).run(
            database.context(job: "deal-insights", runID: try await database.newRun("i"), ))
        let total = try await database.count("SELECT count(*) FROM insights")
        try await database.seed(
            #"UPDATE insights SET "status" = 'dismissed', "updatedAt" = NOW - interval '1 day' WHERE "dealId" = 'd020'"#
        )
        let dismissed = try await database.count(#"SELECT count(*) FROM insights WHERE "dealId" = 'd020'"#)
        #expect(dismissed > 0)
        let inside = try await InsightGenerator(options: options).run(
            database.context(job: "deal-insights", runID: try await database.newRun("i"), ))
        #expect(inside.outcome["insights_created"] == 0)
        try await database.seed(#"UPDATE insights SET "updatedAt" = NOW - interval '4 days' WHERE "dealId" = 'd020'"#)
        let after = try await InsightGenerator(options: options).run(
            database.context(job: "deal-insights", runID: try await database.newRun("i"), ))
        #expect(after.outcome["insights_created"] == .number(Double(dismissed)))
        #expect(try await database.count("SELECT count(*) FROM insights") == total + dismissed)
    }

    @Test("eight concurrent runs create each insight once", arguments: [false, true])
    func concurrentRuns(sharesLedger: Bool) async throws {
        let database = try await Self.database("insightsconcurrent")
        let url = database.url
        let reports = try await withThrowingTaskGroup(of: AgentReport.self) { group in
            for index in 0..<8 {
                group.addTask {
                    let connection = try await PostgresConnection.connect(url)
                    let runID =
                        try await connection.query(
                            """
                            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, status, claimed_by, lease_seconds)
                            VALUES ('default', 'deal-insights', now(), 'c\(index)', 'manual', 'running', 'test', 30) RETURNING id
                            """
                        ).first?.int64("id") ?? 0
                    return try await InsightGenerator(options: .init(AgentOptions(["page_size": .integer(5)]))).run(
                        AgentContext(
                            runID: runID, job: "deal-insights", database: connection,
                            effects: Effects(connection: connection), now: Date(),
                            logger: Logger(label: "t") { _ in SwiftLogNoOpLogHandler() }, dryRun: false,
                            databaseURL: sharesLedger ? url : nil, sharesLedgerDatabase: sharesLedger))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(reports.allSatisfy { $0.failure == nil })
        let created = reports.reduce(0.0) { total, report in
            if case .number(let count)? = report.outcome["insights_created"] { total + count } else { total }
        }
        #expect(Int(created) == (try await database.count("SELECT count(*) FROM insights")))
        #expect(Int(created) == (try await Self.expectedInsights(database, now: Date())))
        #expect(
            try await database.count(
                #"SELECT count(*) FROM (SELECT 1 FROM insights GROUP BY "dealId", "type" HAVING count(*) > 1) AS duplicates"#
            ) == 0)
    }
}
