import Foundation
import Testing

@testable import Engine
@testable import PostgresClient
@testable import EmbeddedPostgres
@testable import ZOARK
@testable import VectorOS
import TestSupport

/// Random product rows, drawn from values the Prisma schemas allow and that real tables end up
/// holding: NULLs where a column may be NULL, NaN, ±Infinity, huge and negative numbers,
/// ±infinity timestamps, control characters, quotes and 10 KB strings in every text column.
/// For each agent: the run ends (nothing traps), every bad row is counted, every good row is
/// handled, and a second run finds nothing new.
@Suite("Hostile rows, property-based")
struct HostileRowsPropertyTests {
    typealias Random = SplitMix64

    static let texts = [
        "plain", "", "ctl \u{1}\u{7}\u{1B}[31m red", "line\r\nBcc: x@evil.com\r\n\r\nbody", "quote ' \" \\ {} ,",
        "<script>alert(1)</script>", "NULL", String(repeating: "é✓", count: 3500), "\u{FEFF}bom\u{202E}rtl",
    ]

    /// (address, whether it is one mailbox); `i` keeps unique columns unique.
    static func email(_ random: inout Random, _ i: Int) -> (String, Bool) {
        random.pick([
            ("a\(i)@example.com", true), ("Ünï Name \(i) <u\(i)@example.com>", true), ("bad\(i)", false),
            ("x\(i)@y", false), ("v\(i)@example.com>\r\nRCPT TO:<evil@evil.com", false),
            ("Victim \(i) <v\(i)@x>, a@evil.com", false), ("ctl\u{1}\(i)@example.com", false),
            (String(repeating: "x", count: 10_000) + "\(i)", false),
        ])
    }

    static let seeds: [UInt64] = [1, 2, 3]

    @Test("task monitor", arguments: seeds)
    func taskMonitor(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        let database = try await ZoarkDatabase("proptasks")
        let projects = (0..<3).map { _ in random.pick(Self.texts) }
        try await database.connection.query(
            #"INSERT INTO "Project" ("id", "name", "updatedAt") SELECT 'p' || (n - 1), name, now() FROM unnest($1::text[]) WITH ORDINALITY AS t(name, n)"#,
            [.array(projects)])
        var rows: [(status: String, kind: String)] = []
        for _ in 0..<40 {
            rows.append(
                (
                    random.pick(["ACTIVE", "ACTIVE", "DONE", "BACKLOG", "GAP"]),
                    random.pick(["3d", "10d", "1h", "-inf", "+inf"])
                ))
        }
        try await database.connection.query(
            """
            INSERT INTO "Task" ("id", "projectId", "title", "status", "lastUpdated", "updatedAt")
            SELECT 't' || n, 'p' || (n % 3), title, status::"TaskStatus",
                   CASE kind WHEN '3d' THEN (now() AT TIME ZONE 'UTC') - interval '3 days'
                             WHEN '10d' THEN (now() AT TIME ZONE 'UTC') - interval '10 days'
                             WHEN '1h' THEN (now() AT TIME ZONE 'UTC') - interval '1 hour'
                             WHEN '-inf' THEN '-infinity' ELSE 'infinity' END,
                   now()
            FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(title, status, kind, n)
            """,
            [.array(rows.map { _ in random.pick(Self.texts) }), .array(rows.map(\.status)), .array(rows.map(\.kind))])
        let stuck = rows.filter { $0.status == "ACTIVE" && ($0.kind == "3d" || $0.kind == "10d") }.count
        let bad = rows.filter { $0.status == "ACTIVE" && $0.kind == "-inf" }.count
        #expect(stuck > 0 && bad > 0, "seed \(seed) draws no stuck or no bad task")
        let options = TaskMonitor.Options(alertTo: ["ops@example.com"])
        let report = try await TaskMonitor(options: options).run(
            database.context(job: "st", runID: try await database.newRun("st")))
        #expect(report.outcome["stuck"] == .number(Double(stuck)))
        #expect(report.outcome["bad_rows"] == (bad > 0 ? .number(Double(bad)) : nil))
        #expect(report.outcome["drafted"] == .number(stuck > 0 ? 1 : 0))
        #expect(report.outcome["newly_stuck"] == .number(Double(stuck)))
        #expect(
            try await database.count("SELECT count(*) FROM runner.effects WHERE kind = 'task-monitor.alert'") == stuck)
        let again = try await TaskMonitor(options: options).run(
            database.context(job: "st", runID: try await database.newRun("st")))
        #expect(again.outcome["newly_stuck"] == 0)
    }

    @Test("approval nudger", arguments: seeds)
    func approvalNudger(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        let database = try await ZoarkDatabase("propnudger")
        try await database.connection.query(
            #"INSERT INTO "Project" ("id", "name", "updatedAt") VALUES ('p1', $1, now())"#,
            [PostgresValue(random.pick(Self.texts))])
        struct Row {
            let amount: String, deadline: String, nudged: String, email: (String, Bool), docs: [String?]?
        }
        let amounts = ["25000", "NaN", "Infinity", "-Infinity", "1e300", "9.3e16", "-5.5", "0", "1234567.891"]
        var rows: [Row] = []
        for i in 0..<100 {
            let docs: [String?]? = random.pick([nil, [], [random.pick(Self.texts), nil, random.pick(Self.texts)]])
            rows.append(
                Row(
                    amount: random.pick(amounts), deadline: random.pick(["3d", "9d", "-inf", "+inf", "future"]),
                    nudged: random.pick(["null", "-inf", "2d", "1h", "+inf"]), email: Self.email(&random, i), docs: docs
                ))
        }
        try await database.connection.query(
            """
            INSERT INTO "Invoice" ("id", "projectId", "amount", "updatedAt")
            SELECT 'i' || n, 'p1', amount::float8, now() FROM unnest($1::text[]) WITH ORDINALITY AS t(amount, n)
            """, [.array(rows.map(\.amount))])
        func instant(_ column: String) -> String {
            """
            CASE \(column) WHEN '3d' THEN (now() AT TIME ZONE 'UTC') - interval '3 days 1 hour'
                          WHEN '9d' THEN (now() AT TIME ZONE 'UTC') - interval '9 days 1 hour'
                          WHEN '2d' THEN (now() AT TIME ZONE 'UTC') - interval '2 days'
                          WHEN '1h' THEN (now() AT TIME ZONE 'UTC') - interval '1 hour'
                          WHEN 'future' THEN (now() AT TIME ZONE 'UTC') + interval '1 day'
                          WHEN '-inf' THEN '-infinity'::timestamp WHEN '+inf' THEN 'infinity'::timestamp END
            """
        }
        try await database.connection.query(
            """
            INSERT INTO "ApprovalStep" ("id", "invoiceId", "stage", "requiredDocs", "assigneeEmail", "status",
                                        "deadline", "lastNudgedAt", "updatedAt")
            SELECT 's' || n, 'i' || n, 'LEGAL_REVIEW', docs::text[], email, 'PENDING', \(instant("deadline")),
                   \(instant("nudged")), now()
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS t(deadline, nudged, email, docs, n)
            """,
            [
                .array(rows.map(\.deadline)), .array(rows.map(\.nudged)), .array(rows.map(\.email.0)),
                .array(rows.map { $0.docs.map { PostgresValue.array($0).text } ?? nil }),
            ])
        let selected = rows.filter {
            ["3d", "9d", "-inf"].contains($0.deadline) && ["null", "-inf", "2d"].contains($0.nudged)
        }
        let bad = selected.filter {
            $0.deadline == "-inf" || !["25000", "-5.5", "0", "1234567.891"].contains($0.amount)
        }
        let good = selected.count - bad.count
        let valid = selected.filter { row in !bad.contains { $0.email.0 == row.email.0 } && row.email.1 }.count
        #expect(!bad.isEmpty && valid > 0 && good > valid, "seed \(seed) draws too few kinds of step")
        let report = try await ApprovalNudger().run(
            database.context(job: "n", runID: try await database.newRun("n")))
        #expect(report.outcome["overdue"] == .number(Double(good)))
        #expect(report.outcome["bad_rows"] == (bad.isEmpty ? nil : .number(Double(bad.count))))
        #expect(report.outcome["drafted"] == .number(Double(valid)))
        #expect(report.outcome["invalid_recipients"] == (good - valid > 0 ? .number(Double(good - valid)) : nil))
        let again = try await ApprovalNudger().run(
            database.context(job: "n", runID: try await database.newRun("n")))
        #expect(again.outcome["drafted"] == 0)
        #expect(again.outcome["invalid_recipients"] == nil)
    }

    @Test("timesheet drafter", arguments: seeds)
    func timesheetDrafter(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        let database = try await ZoarkDatabase("proptimesheet")
        var users: [(email: (String, Bool), status: String, github: String?)] = []
        for i in 0..<30 {
            users.append(
                (
                    Self.email(&random, i), random.pick(["pending", "completed", "weird\u{1}"]),
                    random.pick([nil, "octocat", "bad user;rm -rf", String(repeating: "g", count: 10_000)])
                ))
        }
        try await database.connection.query(
            """
            INSERT INTO "User" ("id", "name", "email", "timesheetStatus", "githubUsername", "updatedAt")
            SELECT 'u' || n, name, email, status, github, now()
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS t(name, email, status, github, n)
            """,
            [
                .array(users.map { _ in random.pick(Self.texts) }), .array(users.map(\.email.0)),
                .array(users.map(\.status)), .array(users.map(\.github)),
            ])
        try await database.connection.query(
            #"INSERT INTO "Project" ("id", "name", "updatedAt") VALUES ('p1', $1, now())"#,
            [PostgresValue(random.pick(Self.texts))])
        try await database.connection.execute(
            """
            INSERT INTO "_ProjectToUser" ("A", "B") SELECT 'p1', "id" FROM "User";
            INSERT INTO "Task" ("id", "projectId", "title", "status", "lastUpdated", "updatedAt") VALUES
                ('t1', 'p1', E'done\\r\\nBcc: x', 'DONE', 'infinity', now()),
                ('t2', 'p1', 'done too', 'DONE', now() AT TIME ZONE 'UTC', now());
            """)
        let environment = ["GITHUB_API_URL": "http://127.0.0.1:\(try EmbeddedPostgres.freePort())"]
        func context(_ runID: Int64) -> AgentContext {
            database.context(job: "ts", runID: runID, environment: environment)
        }
        let open = users.filter { $0.status != "completed" }
        let valid = open.filter(\.email.1).count
        #expect(valid > 0 && open.count > valid, "seed \(seed) draws too few kinds of user")
        let report = try await TimesheetDrafter().run(context(try await database.newRun("ts")))
        #expect(report.outcome["users"] == .number(Double(open.count)))
        #expect(report.outcome["drafted"] == .number(Double(valid)))
        #expect(
            report.outcome["invalid_recipients"] == (open.count > valid ? .number(Double(open.count - valid)) : nil))
        let again = try await TimesheetDrafter().run(context(try await database.newRun("ts")))
        #expect(again.outcome["drafted"] == 0)
    }

    @Test("insight generator", arguments: seeds)
    func insightGenerator(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        let database = try await ZoarkDatabase("propinsights")
        try await database.connection.execute(VectorOSSchema.sql)
        try await database.connection.execute(
            #"INSERT INTO users ("id", "email", "updatedAt") VALUES ('u1', 'o@vector.example', now())"#)
        try await database.connection.query(
            """
            INSERT INTO workspaces ("id", "name", "slug", "ownerId", "updatedAt")
            SELECT 'w' || g, $1, 's' || g, 'u1', now() FROM generate_series(0, 2) g
            """, [PostgresValue(random.pick(Self.texts))])
        struct Row {
            let value: String?, stage: String, probability: String?, close: String, created: String, updated: String
        }
        var rows: [Row] = []
        for _ in 0..<50 {
            rows.append(
                Row(
                    value: random.pick([nil, "50000", "500", "NaN", "Infinity", "-Infinity", "1e300", "-5"]),
                    stage: random.pick([
                        "lead", "qualified", "proposal", "negotiation", "won", "LOST", random.pick(Self.texts),
                    ]),
                    probability: random.pick([nil, "0", "10", "50", "95", "-10", "1000"]),
                    close: random.pick(["null", "+5d", "-3d", "+inf", "-inf"]),
                    created: random.pick(["-40d", "-2d", "-inf"]),
                    updated: random.pick(["-20d", "0d", "-6d", "+inf", "-inf"])))
        }
        func instant(_ column: String) -> String {
            """
            CASE \(column) WHEN 'null' THEN NULL
                          WHEN '-inf' THEN '-infinity'::timestamp WHEN '+inf' THEN 'infinity'::timestamp
                          ELSE (now() AT TIME ZONE 'UTC') + (\(column) || 'ays')::interval - interval '1 hour' END
            """
        }
        try await database.connection.query(
            """
            INSERT INTO deals ("id", "title", "value", "stage", "probability", "closeDate", "workspaceId", "createdAt", "updatedAt")
            SELECT 'd' || lpad(n::text, 3, '0'), title, value::float8, stage, probability::int,
                   \(instant("close")), 'w' || (n % 3), \(instant("created")), \(instant("updated"))
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
                 WITH ORDINALITY AS t(title, value, stage, probability, close, created, updated, n)
            """,
            [
                .array(rows.map { _ in random.pick(Self.texts) }), .array(rows.map(\.value)), .array(rows.map(\.stage)),
                .array(rows.map(\.probability)), .array(rows.map(\.close)), .array(rows.map(\.created)),
                .array(rows.map(\.updated)),
            ])
        let open = rows.filter { !["won", "lost"].contains($0.stage.lowercased()) }
        let bad = open.filter { row in
            row.created == "-inf" || row.updated.hasSuffix("inf") || row.close.hasSuffix("inf")
                || ["NaN", "Infinity", "-Infinity"].contains(row.value ?? "")
        }
        // What the rules find in the good deals, read back as the database stores them.
        let goodDeals = try await database.connection.query(
            """
            SELECT "id", "workspaceId", "title", "value", "stage", "probability", extract(epoch FROM "closeDate") AS close,
                   extract(epoch FROM "createdAt") AS created, extract(epoch FROM "updatedAt") AS updated
            FROM deals WHERE lower("stage") NOT IN ('won', 'lost') AND isfinite("createdAt") AND isfinite("updatedAt")
              AND ("closeDate" IS NULL OR isfinite("closeDate")) AND ("value" IS NULL OR "value" NOT IN ('NaN', 'Infinity', '-Infinity'))
            """
        ).map { row in
            Deal(
                id: try row.string("id")!, workspaceID: try row.string("workspaceId")!, title: try row.string("title")!,
                value: try row.double("value"), stage: try row.string("stage")!,
                probability: try row.int("probability"),
                closeDate: try row.double("close").map(Date.init(timeIntervalSince1970:)),
                createdAt: Date(timeIntervalSince1970: try row.double("created")!),
                updatedAt: Date(timeIntervalSince1970: try row.double("updated")!))
        }
        #expect(goodDeals.count == open.count - bad.count)
        #expect(!bad.isEmpty && !goodDeals.isEmpty, "seed \(seed) draws too few kinds of deal")
        let now = Date()
        let expected = goodDeals.reduce(0) { $0 + DealRules.anomalies(of: $1, now: now).count }
        let context = database.context(
            job: "di", runID: try await database.newRun("di"), now: now, sharesLedger: true)
        let report = try await InsightGenerator().run(context)
        #expect(report.failure == nil)
        #expect(report.outcome["deals_scanned"] == .number(Double(goodDeals.count)))
        #expect(report.outcome["bad_rows"] == (bad.isEmpty ? nil : .number(Double(bad.count))))
        #expect(report.outcome["insights_created"] == .number(Double(expected)))
        let again = try await InsightGenerator().run(
            database.context(job: "di", runID: try await database.newRun("di"), sharesLedger: true))
        #expect(again.outcome["insights_created"] == 0)
    }
}
