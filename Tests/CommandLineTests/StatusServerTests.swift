import Foundation
import Testing

@testable import Engine
@testable import PostgresClient
@testable import EmbeddedPostgres
import TestSupport

/// `runner schedule --http`: what a person and a Prometheus server read from it, checked by
/// a real headless Chromium and by promtool (issue 14).
@Suite("runner schedule --http: health, metrics, status page")
struct StatusServerTests {
    /// Runs a program to its end; its status and standard output.
    static func tool(_ argv: [String], input: String? = nil) async throws -> (Int32, String) {
        let result = try await runTool(argv, input: input)
        return (result.status, result.stdout)
    }

    static func get(_ url: String) async throws -> (Int, String) {
        let (_, output) = try await tool(["/usr/bin/curl", "-s", "-m", "10", "-w", "\n%{http_code}", url])
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    @Test(
        "the page in Chromium lists every job with escaped values; /metrics passes promtool; /health is 200, then 503 with why"
    )
    func endpoints() async throws {
        let setup = try await CLISetup(
            "statusserver",
            jobs: """
                jobs:
                  ok: {command: ["true"], schedule: "*/2 * * * * *", timezone: America/New_York}
                  broken: {command: ["/nonexistent/<b>x</b>"], schedule: "*/3 * * * * *", retries: {max: 0}}
                """)
        let port = try EmbeddedPostgres.freePort()
        let base = "http://127.0.0.1:\(port)"
        let log = setup.directory.url.appendingPathComponent("scheduler.log")
        let scheduler = try RunnerProcess.launch(
            ["schedule", "--http", "127.0.0.1:\(port)"], environment: setup.environment, log: log)
        try await withCleanup {
            let healthy = try await eventually(within: .seconds(30)) {
                try await Self.get(base + "/health").0 == 200
            }
            #expect(healthy, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            #expect(
                try await eventually(within: .seconds(30)) {
                    let failed = try await setup.count(
                        "SELECT count(*) FROM runner.runs WHERE job = 'broken' AND status = 'failed'")
                    let succeeded = try await setup.count(
                        "SELECT count(*) FROM runner.runs WHERE job = 'ok' AND status = 'succeeded'")
                    return failed >= 2 && succeeded >= 2
                })

            let (metricsStatus, metrics) = try await Self.get(base + "/metrics")
            #expect(metricsStatus == 200)
            let (promtool, _) = try await Self.tool(["/usr/bin/promtool", "check", "metrics"], input: metrics)
            #expect(promtool == 0, "promtool refused the exposition:\n\(metrics.prefix(2000))")
            for expected in [
                #"runner_runs_total{job="ok",status="succeeded"}"#, #"runner_runs_total{job="broken",status="failed"}"#,
                "runner_scheduler_up 1", #"runner_last_success_timestamp_seconds{job="ok"}"#,
                #"runner_run_duration_seconds_bucket{job="ok""#, #"runner_schedule_delay_seconds_count{job="ok"}"#,
                #"runner_running{job="broken"}"#,
            ] {
                #expect(metrics.contains(expected), "no \(expected) in /metrics")
            }

            // A paused job says so, its reason escaped.
            let pause = try await setup.runner("pause", "broken", "--reason", "<i>maintenance</i>")
            #expect(pause.status == 0, "\(pause.stderr)")

            // As a person sees it: the DOM Chromium built, and a screenshot.
            let artifacts = TestDatabase.packageRoot.appendingPathComponent(".build/test-artifacts")
            try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
            let shot = artifacts.appendingPathComponent("status-page.png")
            try? FileManager.default.removeItem(at: shot)
            let chromium = [
                "/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1300,600",
            ]
            let (domStatus, dom) = try await Self.tool(chromium + ["--dump-dom", base + "/"])
            #expect(domStatus == 0)
            #expect(
                dom.contains(#"<tr data-job="ok">"#) && dom.contains(#"<tr data-job="broken">"#), "\(dom.prefix(3000))")
            #expect(dom.contains("America/New_York"))
            #expect(dom.contains("/nonexistent/&lt;b&gt;x&lt;/b&gt;"), "the error is shown as text")
            #expect(!dom.contains("<b>x</b>"), "a value became markup")
            #expect(dom.contains(#"class="mark failed""#) && dom.contains(#"class="mark succeeded""#))
            #expect(dom.contains(#"<span class="streak">"#), "broken's failure streak is shown")
            #expect(
                dom.contains(#"<span class="paused">paused: &lt;i&gt;maintenance&lt;/i&gt;</span>"#),
                "\(dom.prefix(3000))")
            _ = try await Self.tool(chromium + ["--screenshot=\(shot.path)", base + "/"])
            let png = try Data(contentsOf: shot)
            #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 5000, "screenshot \(png.count) bytes")

            // The ledger's database gone: /health says 503 and why.
            let name = try #require(
                try await setup.connection.query("SELECT current_database() AS d").first?.string("d"))
            let admin = try await PostgresConnection.connect(setup.url.replacingDatabase(with: "postgres"))
            try await admin.execute("DROP DATABASE \(name) WITH (FORCE)")
            await admin.close()
            let unhealthy = try await eventually(within: .seconds(20)) {
                try await Self.get(base + "/health").0 == 503
            }
            #expect(unhealthy)
            // A generic reason: not the ledger's user, host, socket, port or database name.
            let reason = try await Self.get(base + "/health").1.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(reason == "the database did not answer", "\(reason)")
            #expect(!reason.contains(name) && !reason.contains("socket") && !reason.contains("runner@"))
            // Every answer tells a browser to load, frame and sniff nothing.
            let (_, headers) = try await Self.tool(["/usr/bin/curl", "-s", "-m", "10", "-D", "-", "-o", "/dev/null", base + "/health"])
            let lower = headers.lowercased()
            for expected in [
                "content-security-policy: default-src 'none'", "frame-ancestors 'none'", "x-content-type-options: nosniff",
                "referrer-policy: no-referrer",
            ] {
                #expect(lower.contains(expected), "\(headers)")
            }
        } cleanup: {
            _ = try? await ScheduleCommandTests.stop(scheduler)
        }
    }
}
