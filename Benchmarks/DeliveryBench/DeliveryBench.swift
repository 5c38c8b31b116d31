import BenchmarkSupport
import EmbeddedPostgres
import Foundation
import JobTable
import Ledger
import Logging
import Outbox
import PostgresClient
import Engine
import RunnerSupport
import ZOARK

// Real sends: the approval nudger over 5,000 overdue steps, every email sent to a local server,
// with 1 and 4 connections:
// - SMTP without TLS (aiosmtpd);
// - SMTP with STARTTLS and AUTH, as production runs it (aiosmtpd with a throwaway certificate
//   the runner is told to trust through SMTP_CA_FILE);
// - the SendGrid HTTP API (Tests/Servers/http_server.py answering 202, as SendGrid does).
// Each run starts from no recorded email; afterwards the server holds each email once and the
// ledger shows each sent once.
//
// Run: swift run -c release delivery-bench [CONNECTION-STRING]
// Needs python3 with aiosmtpd (scripts/setup installs it) and openssl.

@main
struct DeliveryBench {
    static let steps = 5000

    static func main() async throws {
        let server = try await BenchmarkDatabase.fromArguments()
        let (name, url, connection) = try await server.fresh("delivery_bench")
        try await connection.execute(ZoarkSchema.sql)
        try await connection.execute(
            """
            INSERT INTO "Project" ("id", "name", "updatedAt") VALUES ('p1', 'Apollo', now());
            INSERT INTO "Invoice" ("id", "projectId", "amount", "updatedAt") VALUES ('i1', 'p1', 25000, now());
            INSERT INTO "ApprovalStep" ("id", "invoiceId", "stage", "requiredDocs", "assigneeEmail", "deadline", "updatedAt")
            SELECT 's' || g, 'i1', 'FINANCE_CHECK', '{"Receipt","PO"}', 'approver' || g || '@example.com',
                   (now() AT TIME ZONE 'UTC') - (g % 12) * interval '1 day' - interval '1 hour', now()
            FROM generate_series(1, \(steps)) g
            """)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("delivery-bench-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let certificate = try makeCertificate(in: scratch)

        print("\(steps) nudges sent for real per line; emails/s over the sending phase (send_ms), and the whole run")
        for (label, tls) in [("SMTP, no TLS", false), ("SMTP, STARTTLS + AUTH", true)] {
            for connections in [1, 4] {
                let folder = scratch.appendingPathComponent("smtp-\(tls)-\(connections)")
                let port = try EmbeddedPostgres.freePort()
                var arguments = [
                    root.appendingPathComponent("Tests/Servers/smtp_server.py").path, String(port), folder.path,
                ]
                var environment = [
                    "EMAIL_PROVIDER": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": String(port),
                    "SMTP_FROM": "runner@zoark.example", "EMAIL_MAX_CONNECTIONS": String(connections),
                ]
                if tls {
                    arguments += [
                        "--tls-cert", certificate.cert, "--tls-key", certificate.key, "--auth", "runner:bench-password",
                    ]
                    environment.merge([
                        "SMTP_USER": "runner", "SMTP_PASSWORD": "bench-password", "SMTP_CA_FILE": certificate.cert,
                    ]) { $1 }
                } else {
                    environment["SMTP_SECURITY"] = "none"
                }
                let process = try startServer(arguments)
                defer { process.terminate() }
                let figures = try await send(environment: environment, url: url, connection: connection)
                let delivered = try FileManager.default.contentsOfDirectory(atPath: folder.path)
                    .filter { $0.hasSuffix(".eml") }.count
                benchmarkCheck(delivered == steps, "\(label): the server holds \(delivered) emails, not \(steps)")
                print(figures.line("\(label), \(connections) connection\(connections == 1 ? "" : "s")"))
            }
        }
        for connections in [1, 4] {
            let folder = scratch.appendingPathComponent("sendgrid-\(connections)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let routes = folder.appendingPathComponent("routes.json")
            try #"{"POST /v3/mail/send": {"status": 202, "body": {}}}"#.write(
                to: routes, atomically: true, encoding: .utf8)
            let log = folder.appendingPathComponent("requests.jsonl")
            let port = try EmbeddedPostgres.freePort()
            let process = try startServer([
                root.appendingPathComponent("Tests/Servers/http_server.py").path, String(port), routes.path, log.path,
            ])
            defer { process.terminate() }
            let figures = try await send(
                environment: [
                    "EMAIL_PROVIDER": "sendgrid", "SENDGRID_API_KEY": "SG.bench",
                    "SENDGRID_FROM_EMAIL": "runner@zoark.example",
                    "SENDGRID_BASE_URL": "http://127.0.0.1:\(port)", "EMAIL_MAX_CONNECTIONS": String(connections),
                ], url: url, connection: connection)
            let requests = (try String(contentsOf: log, encoding: .utf8)).split(separator: "\n").count
            benchmarkCheck(requests == steps, "SendGrid: the server saw \(requests) requests, not \(steps)")
            print(figures.line("SendGrid API, \(connections) connection\(connections == 1 ? "" : "s")"))
        }
        print("goals: at least 500 emails/s with 4 connections without TLS, 300/s with STARTTLS + AUTH")
        await connection.close()
        try await server.drop(name)
    }

    struct Figures {
        let sendMs: Double
        let runMs: Double

        func line(_ label: String) -> String {
            "  " + label.padding(toLength: 38, withPad: " ", startingAt: 0)
                + String(
                    format: "%6.0f emails/s sending (%5.0f ms), %6.0f emails/s whole run (%5.0f ms)",
                    Double(DeliveryBench.steps) / (sendMs / 1000), sendMs,
                    Double(DeliveryBench.steps) / (runMs / 1000), runMs)
        }
    }

    /// One nudger run from a clean slate, sending every nudge through the configured provider.
    static func send(environment: [String: String], url: ConnectionString, connection: PostgresConnection) async throws
        -> Figures
    {
        try await connection.execute(
            #"DELETE FROM runner.effects; UPDATE "ApprovalStep" SET "lastNudgedAt" = NULL"#)
        let mailer = try MailerConfiguration.mailer(environment: environment)
        let effects = try await PostgresConnection.connect(url)
        let runID =
            try await connection.query(
                """
                INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, status, claimed_by, lease_seconds)
                VALUES ('default', 'nudges', now(), gen_random_uuid()::text, 'manual', 'running', 'bench', 30) RETURNING id
                """
            ).first?.int64("id") ?? 0
        let context = AgentContext(
            runID: runID, job: "nudges", database: connection, effects: Effects(connection: effects, namespace: JobTable.defaultNamespace),
            clients: AgentClients(mailer: mailer), now: Date(),
            logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }, dryRun: false, databaseURL: url)
        let started = ContinuousClock.now
        let report = try await ApprovalNudger().run(context)
        let runMs = (ContinuousClock.now - started).milliseconds
        await effects.close()
        benchmarkCheck(report.failure == nil, "the run failed: \(report.failure ?? "")")
        benchmarkCheck(
            report.outcome["emailed"] == .number(Double(steps)), "emailed \(report.outcome["emailed"]?.text ?? "none")")
        let row = try await connection.query(
            "SELECT count(*) AS n, count(DISTINCT key) AS keys FROM runner.effects WHERE kind = 'email' AND status = 'sent'"
        ).first
        let (sent, keys) = (try row?.int("n") ?? -1, try row?.int("keys") ?? -1)
        benchmarkCheck(sent == steps && keys == steps, "the ledger shows \(sent) sent under \(keys) keys, not \(steps)")
        let sendMs = report.metrics.first { $0.name == "send_ms" }?.value ?? runMs
        return Figures(sendMs: sendMs, runMs: runMs)
    }

    static func startServer(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = Pipe()
        process.standardError = FileHandle.nullDevice
        try process.run()
        benchmarkCheck(
            String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).contains("ready"),
            "the server \(arguments.first ?? "") did not start (scripts/setup installs aiosmtpd)")
        return process
    }

    static func makeCertificate(in folder: URL) throws -> (cert: String, key: String) {
        let cert = folder.appendingPathComponent("cert.pem").path
        let key = folder.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        benchmarkCheck(openssl.terminationStatus == 0, "openssl could not make a certificate")
        return (cert, key)
    }
}
