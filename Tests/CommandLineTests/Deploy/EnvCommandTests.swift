import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
import TestSupport

@Suite("runner env and .env.example")
struct EnvCommandTests {
    /// Variables the code reads or sets that are not settings: the command jobs' own, and the
    /// process's plumbing.
    static let internalNames: Set<String> = [
        "PATH", "USER", "HOME", "TMPDIR", "RUNNER_JOB", "RUNNER_SLOT", "RUNNER_RUN_ID", "RUNNER_COMMAND_TOKEN",
    ]

    @Test(".env.example lists every variable of the catalog, each with its explanation, and the code reads no other")
    func example() throws {
        let text = try String(
            contentsOf: DeployFilesTests.root.appendingPathComponent(".env.example"), encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init)
        var listed: [String] = []
        // No line sets anything: each variable is a commented `# NAME=` under its explanation.
        #expect(!lines.contains { !$0.hasPrefix("#") && $0.contains("=") }, "an active line in .env.example")
        for (index, line) in lines.enumerated()
        where line.range(of: #"^# [A-Z_][A-Z0-9_]*="#, options: .regularExpression) != nil {
            let name = String(line.dropFirst(2).prefix { $0 != "=" })
            listed.append(name)
            let help = try #require(EnvironmentCatalog.all.first { $0.name == name }, "\(name) is not in the catalog")
            #expect(index > 0 && lines[index - 1] == "# \(help.help)", "\(name): its explanation differs")
            #expect(line == "# \(name)=", "\(name) has a value in the example")
        }
        #expect(listed == EnvironmentCatalog.all.map(\.name))
        // Every variable the sources read by name is a setting of the catalog or plumbing.
        let sources = DeployFilesTests.root.appendingPathComponent("Sources")
        let files =
            FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" } ?? []
        var read: Set<String> = []
        for file in files {
            let code = try String(contentsOf: file, encoding: .utf8)
            for match in code.matches(of: /(?:environment\[|value\(|required\()"([A-Z][A-Z0-9_]+)"/) {
                read.insert(String(match.1))
            }
        }
        #expect(read.count > 20, "the scan found \(read.count) names")
        let unknown = read.subtracting(EnvironmentCatalog.all.map(\.name)).subtracting(Self.internalNames)
        #expect(unknown.isEmpty, "read by the code but not in the catalog: \(unknown.sorted())")
    }

    @Test("runner env: needed and missing exits 2 naming it; secrets show only that they are set, never a value")
    func env() async throws {
        let scratch = try TemporaryDirectory()
        let config = try scratch.write(
            "jobs.yaml",
            """
            # ${COMMENTED} is not used
            jobs:
              hello:
                command: ["sh", "-c", "echo ${NEEDED_HOST} ${OPTIONAL_NAME:-anon} $${NOT_A_VARIABLE}"]
                env: {MY_TOKEN: "${MY_TOKEN}", HOOK: "${SLACK_WEBHOOK}"}
                schedule: "@daily"
                notify: [{webhook: "https://hooks.example.com/runner"}]
            """
        ).path
        let secrets = [
            "DATABASE_URL": "postgres://app:pa55-Word-zq9X@db.internal:5432/app",
            "SENDGRID_API_KEY": "SG.zq9Xkeyvalue-1234567890",
            "MY_TOKEN": "tok-zq9X-0987654321",
            // Named like no secret, yet one: only the job table knows it, so only "set" is shown.
            "SLACK_WEBHOOK": "https://hooks.example.com/services/zq9X-T000/B000",
            // A setting of the catalog that holds no secret, but a proxy's password in its URL.
            "SENDGRID_BASE_URL": "https://p:pa55-Word-zq9X@sg.internal",
        ]
        let bare = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "RUNNER_CONFIG": config]
        func env(_ extra: [String: String]) async throws -> RunnerProcess.Result {
            try await RunnerProcess.run(["env"], environment: bare.merging(extra) { $1 }, clearEnvironment: true)
        }

        let missing = try await env(secrets)
        #expect(missing.status == 2, "\(missing.stdout) \(missing.stderr)")
        #expect(missing.stderr.contains("error: NEEDED_HOST is not set (needed by \(config))"), "\(missing.stderr)")
        #expect(
            missing.stderr.contains("error: WEBHOOK_SECRET is not set (needed by the webhook channels of \(config))"),
            "\(missing.stderr)")
        #expect(!missing.stderr.contains("OPTIONAL_NAME") && !missing.stdout.contains("COMMENTED"))
        #expect(!missing.stdout.contains("NOT_A_VARIABLE"))
        let row = missing.stdout.split(separator: "\n").first { $0.hasPrefix("NEEDED_HOST ") } ?? ""
        #expect(row.contains("MISSING"), "\(row)")

        let ready = try await env(
            secrets.merging(["NEEDED_HOST": "db.example.org", "EMAIL_PROVIDER": "sendgrid"]) { $1 })
        #expect(
            ready.status == 2
                && ready.stderr.contains("SENDGRID_FROM_EMAIL is not set (needed by EMAIL_PROVIDER=sendgrid)"))
        let complete = try await env(
            secrets.merging(
                [
                    "NEEDED_HOST": "db.example.org", "EMAIL_PROVIDER": "sendgrid",
                    "SENDGRID_FROM_EMAIL": "ops@example.org",
                    "WEBHOOK_SECRET": "whsec-zq9X-1234567",
                ]
            ) { $1 })
        #expect(complete.status == 0, "\(complete.stdout) \(complete.stderr)")
        #expect(complete.stdout.contains("set: sendgrid"), "a setting of the catalog that is no secret is shown")
        #expect(!complete.stdout.contains("db.example.org"), "a name only the job table knows shows only \"set\"")
        for result in [missing, ready, complete] {
            let output = result.stdout + result.stderr
            // Not a value, not a prefix: the marker all three share appears nowhere.
            #expect(!output.contains("zq9X") && !output.contains("pa55"), "a secret leaked: \(output)")
        }
        #expect(complete.stdout.contains("set: https://p:[redacted]@sg.internal"), "\(complete.stdout)")
        for name in ["DATABASE_URL", "SENDGRID_API_KEY", "MY_TOKEN", "SLACK_WEBHOOK"] {
            let line = complete.stdout.split(separator: "\n").first { $0.hasPrefix("\(name) ") } ?? ""
            #expect(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(2).first == "set", "\(line)")
        }

        let bogus = try await env(
            secrets.merging([
                "NEEDED_HOST": "h", "EMAIL_PROVIDER": "carrier-pigeon", "WEBHOOK_SECRET": "whsec-zq9X-1234567",
            ]) {
                $1
            })
        #expect(
            bogus.status == 2 && bogus.stderr.contains("EMAIL_PROVIDER=carrier-pigeon is not one of"), "\(bogus.stderr)"
        )
    }
}
