import Foundation
@testable import JobTable
import StandardAgents
import Testing
import Yams

@testable import Engine
@testable import RunnerSupport
@testable import Cron
import TestSupport

/// The deploy files at the top of the repository, tied to `jobs.yaml` and the CLI: a job added
/// to the table and forgotten here, or a command renamed, fails this suite.
@Suite("Deploy files against jobs.yaml and the CLI")
struct DeployFilesTests {
    static let root = TestDatabase.packageRoot

    static func jobTable() throws -> JobTable {
        try JobTableLoader(environment: [:], agents: .standard).load(path: root.appendingPathComponent("jobs.yaml").path)
    }

    @Test("crontab.example: one runner once line per job, at the job's own schedule when cron can say it")
    func crontab() async throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("crontab.example"), encoding: .utf8)
        var lines: [String: [String]] = [:]
        for line in text.split(separator: "\n").map(String.init) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            // Comments, blank lines and VAR=value lines are not entries.
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"),
                trimmed.range(of: #"^[A-Z_]+="#, options: .regularExpression) == nil
            else { continue }
            let fields = trimmed.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true).map(String.init)
            try #require(fields.count == 6, "not a crontab entry: \(line)")
            let command = fields[5]
            let match = try #require(
                command.firstMatch(of: /runner once ([a-z0-9-]+)/), "an entry that is not `runner once JOB`: \(line)")
            lines[String(match.1), default: []].append(fields[0..<5].joined(separator: " "))
        }
        let table = try Self.jobTable()
        #expect(Set(lines.keys) == Set(table.jobs.map(\.name)), "crontab jobs \(lines.keys.sorted())")
        for job in table.jobs {
            let entries = lines[job.name] ?? []
            #expect(entries.count == 1, "\(job.name): \(entries)")
            let fields = job.schedule.text.split(separator: " ")
            let cronCanSay = job.timeZoneName == "UTC" && fields.count == 5
            let expected = cronCanSay ? job.schedule.text : "* * * * *"
            #expect(entries.first == expected, "\(job.name) (\(job.schedule.text), \(job.timeZoneName)): \(entries)")
        }
        // The command it names exists, with the argument it passes.
        let help = try await RunnerProcess.run(["once", "--help"])
        #expect(help.status == 0 && help.stdout.contains("<job>"), "\(help.stdout)")
    }

    /// A deploy file parsed as YAML (every document of it) or JSON.
    static func documents(_ path: String) throws -> [[String: Any]] {
        let text = try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
        if path.hasSuffix(".json") {
            return [try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(path)")]
        }
        return try Yams.load_all(yaml: text).map { try #require($0 as? [String: Any], "\(path): not a mapping") }
    }

    /// The schedule a platform whose cron speaks only UTC five-field expressions, at most every
    /// `minimumInterval` seconds, gets for `job`: the job's own when it can say it, else a call
    /// every 5 minutes, and the job's `catchup` lets such a call still run its slot.
    static func platformSchedule(for job: Job, minimumInterval: Double = 60) -> String {
        let fields = job.schedule.text.split(separator: " ")
        let gaps = zip(
            job.schedule.upcoming(after: Date(), count: 50), job.schedule.upcoming(after: Date(), count: 51).dropFirst()
        )
        let often = gaps.contains { $1.timeIntervalSince($0) < minimumInterval }
        return job.timeZoneName == "UTC" && fields.count == 5 && !often ? job.schedule.text : "*/5 * * * *"
    }

    /// `runner SUBCOMMAND --flags…` names a command of the CLI and only options it has.
    static func expectCommandExists(_ command: String, in file: String) async throws {
        let words = command.split(separator: " ").map(String.init)
        try #require(words.first == "runner" && words.count >= 2, "\(file): \(command)")
        let help = try await RunnerProcess.run([words[1], "--help"])
        #expect(help.status == 0, "\(file): `runner \(words[1])` is not a command: \(help.stderr)")
        for flag in words.dropFirst(2) where flag.hasPrefix("--") {
            #expect(help.stdout.contains(flag), "\(file): `runner \(words[1])` has no \(flag)")
        }
    }

    @Test("render.yaml: a Cron Job per job running runner once JOB; deploy/render/worker.yaml: runner schedule")
    func render() async throws {
        let table = try Self.jobTable()
        let blueprint = try #require(try Self.documents("render.yaml").first)
        let services = try #require(blueprint["services"] as? [[String: Any]])
        var byJob: [String: [String: Any]] = [:]
        for service in services {
            #expect(service["type"] as? String == "cron" && service["runtime"] as? String == "docker", "\(service)")
            let command = try #require(service["dockerCommand"] as? String)
            let match = try #require(command.wholeMatch(of: /runner once ([a-z0-9-]+)/), "\(command)")
            byJob[String(match.1)] = service
            try await Self.expectCommandExists(command, in: "render.yaml")
        }
        #expect(Set(byJob.keys) == Set(table.jobs.map(\.name)))
        for job in table.jobs {
            let schedule = try #require(byJob[job.name]?["schedule"] as? String)
            #expect(schedule == Self.platformSchedule(for: job), "\(job.name): \(schedule)")
            if schedule != job.schedule.text { #expect(job.catchup >= .seconds(300), "\(job.name)") }
        }
        let groups = try #require(blueprint["envVarGroups"] as? [[String: Any]])
        let keys = groups.flatMap { ($0["envVars"] as? [[String: Any]]) ?? [] }.compactMap { $0["key"] as? String }
        #expect(keys.contains("DATABASE_URL"))
        for key in keys {
            #expect(
                EnvironmentCatalog.all.contains { $0.name == key }, "render.yaml sets \(key), which runner never reads")
        }

        let worker = try #require(try Self.documents("deploy/render/worker.yaml").first)
        let workers = try #require(worker["services"] as? [[String: Any]])
        #expect(workers.count == 1 && workers[0]["type"] as? String == "worker")
        for key in ["dockerCommand", "preDeployCommand"] {
            try await Self.expectCommandExists(
                try #require(workers[0][key] as? String), in: "deploy/render/worker.yaml")
        }
        #expect((workers[0]["dockerCommand"] as? String)?.hasPrefix("runner schedule") == true)
    }

    @Test(
        "railway.json runs the scheduler; deploy/railway/JOB.json a cron service per job, UTC, at least 5 minutes apart"
    )
    func railway() async throws {
        let table = try Self.jobTable()
        let worker = try #require(try Self.documents("railway.json").first)
        let deploy = try #require(worker["deploy"] as? [String: Any])
        // Railway gives the port in PORT, and runs a start command without a shell.
        let wrapped = try #require(deploy["startCommand"] as? String)
        let start = try #require(
            wrapped.wholeMatch(of: /sh -c 'exec (runner schedule --http 0\.0\.0\.0:\$\{PORT:-8080\} [^']*)'/)?.1,
            "\(wrapped)")
        try await Self.expectCommandExists(
            String(start).replacingOccurrences(of: "${PORT:-8080}", with: "8080"), in: "railway.json")
        for command in try #require(deploy["preDeployCommand"] as? [String]) {
            try await Self.expectCommandExists(command, in: "railway.json")
        }
        #expect(deploy["healthcheckPath"] as? String == "/health")

        let files = try FileManager.default.contentsOfDirectory(
            atPath: Self.root.appendingPathComponent("deploy/railway").path
        ).filter { $0.hasSuffix(".json") }
        #expect(Set(files) == Set(table.jobs.map { "\($0.name).json" }))
        for job in table.jobs {
            let service = try #require(try Self.documents("deploy/railway/\(job.name).json").first)
            let deploy = try #require(service["deploy"] as? [String: Any])
            #expect(deploy["startCommand"] as? String == "runner once \(job.name)")
            #expect(
                deploy["restartPolicyType"] as? String == "NEVER", "a cron run that fails is not restarted by Railway")
            let cron = try #require(deploy["cronSchedule"] as? String)
            #expect(cron == Self.platformSchedule(for: job, minimumInterval: 300), "\(job.name): \(cron)")
            // Railway's minimum: 5 minutes between runs.
            let schedule = try Schedule(parsing: cron)
            let fires = schedule.upcoming(after: Date(), count: 30)
            #expect(
                zip(fires, fires.dropFirst()).allSatisfy { $1.timeIntervalSince($0) >= 300 }, "\(job.name): \(cron)")
            try await Self.expectCommandExists(try #require(deploy["startCommand"] as? String), in: "\(job.name).json")
        }
    }

    @Test(
        "deploy/kubernetes: valid against Kubernetes' schemas; a Forbid CronJob per job at its schedule and zone; 2 scheduler replicas probed on /health"
    )
    func kubernetes() async throws {
        let folder = "deploy/kubernetes"
        let manifests = ["cronjobs.yaml", "deployment.yaml", "migrate-job.yaml"]
        let validator = try await runTool(
            ["/usr/bin/env", "python3", "-m", "kubernetes_validate", "--strict", "--no-warn"]
                + manifests.map { Self.root.appendingPathComponent("\(folder)/\($0)").path })
        #expect(validator.status == 0, "\(validator.stdout) \(validator.stderr)")
        #expect(
            validator.stdout.components(separatedBy: " passed for resource ").count - 1 == 4 + 1 + 1,
            "\(validator.stdout)")

        let table = try Self.jobTable()
        var cronJobs: [String: [String: Any]] = [:]
        for document in try Self.documents("\(folder)/cronjobs.yaml") {
            let spec = try #require(document["spec"] as? [String: Any])
            let template = try #require(
                ((((spec["jobTemplate"] as? [String: Any])?["spec"] as? [String: Any])?["template"] as? [String: Any])?[
                    "spec"] as? [String: Any]))
            let container = try #require((template["containers"] as? [[String: Any]])?.first)
            let args = try #require(container["args"] as? [String])
            try #require(args.count == 2 && args[0] == "once", "\(args)")
            cronJobs[args[1]] = spec
        }
        #expect(Set(cronJobs.keys) == Set(table.jobs.map(\.name)))
        for job in table.jobs {
            let spec = try #require(cronJobs[job.name])
            let seconds = job.schedule.text.split(separator: " ").count == 6 || job.schedule.text.hasPrefix("@every")
            #expect(spec["schedule"] as? String == (seconds ? "* * * * *" : job.schedule.text), "\(job.name)")
            #expect(spec["timeZone"] as? String == job.timeZoneName, "\(job.name)")
            #expect(spec["concurrencyPolicy"] as? String == "Forbid")
            let deadline = try #require(spec["startingDeadlineSeconds"] as? Int)
            #expect(Duration.seconds(deadline) < job.catchup, "\(job.name): a late Job must still find its slot")
        }

        let deployment = try #require(try Self.documents("\(folder)/deployment.yaml").first)
        let spec = try #require(deployment["spec"] as? [String: Any])
        #expect(spec["replicas"] as? Int == 2)
        let pod = try #require((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
        let container = try #require((pod["containers"] as? [[String: Any]])?.first)
        let args = try #require(container["args"] as? [String])
        try await Self.expectCommandExists((["runner"] + args).joined(separator: " "), in: "deployment.yaml")
        #expect(args.prefix(3) == ["schedule", "--http", "0.0.0.0:8080"])
        // Ready while /health says the database answers and the loop ticks; alive while it
        // serves its port, so a database outage does not restart (and interrupt) the schedulers.
        let ready = try #require((container["readinessProbe"] as? [String: Any])?["httpGet"] as? [String: Any])
        #expect(ready["path"] as? String == "/health")
        let alive = try #require(container["livenessProbe"] as? [String: Any])
        #expect(alive["httpGet"] == nil && alive["tcpSocket"] != nil, "\(alive)")
        // The pod's grace period outlasts runner's own --grace.
        let grace = try #require(args.firstIndex(of: "--grace").map { args[$0 + 1] })
        let podGrace = try #require(pod["terminationGracePeriodSeconds"] as? Int)
        #expect(try DurationParser.parse(grace) < .seconds(podGrace))
    }

    @Test(
        "deploy/systemd/runner.service passes systemd-analyze verify and runs runner schedule, env as its pre-start check"
    )
    func systemd() async throws {
        let unit = try String(
            contentsOf: Self.root.appendingPathComponent("deploy/systemd/runner.service"), encoding: .utf8)
        var values: [String: String] = [:]
        for line in unit.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        let start = try #require(values["ExecStart"])
        #expect(start.hasPrefix("/usr/local/bin/runner schedule"))
        try await Self.expectCommandExists(
            start.replacingOccurrences(of: "/usr/local/bin/runner", with: "runner"), in: "runner.service")
        #expect(values["ExecStartPre"] == "/usr/local/bin/runner env")
        #expect(values["KillSignal"] == "SIGTERM" && values["ExecReload"] == "/bin/kill -HUP $MAINPID")
        // systemd's own parser, with the binary path pointed at the one just built.
        let scratch = try TemporaryDirectory()
        let copy = try scratch.write(
            "runner.service",
            unit.replacingOccurrences(of: "/usr/local/bin/runner", with: RunnerProcess.executable.path))
        let verify = try await runTool(["/usr/bin/systemd-analyze", "verify", "--man=no", copy.path])
        #expect(verify.status == 0 && verify.stderr.isEmpty, "\(verify.stderr)")
        // A typo is caught: the check is not vacuous.
        let broken = try scratch.write("broken.service", unit.replacingOccurrences(of: "KillMode=", with: "KilMode="))
        let typo = try await runTool(["/usr/bin/systemd-analyze", "verify", "--man=no", broken.path])
        #expect(typo.stderr.contains("Unknown key"), "\(typo.stderr)")
    }
}
