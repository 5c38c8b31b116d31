import ArgumentParser
import Foundation
import Outbox
import Redaction
import Engine
import RunnerSupport

struct Env: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "env",
        abstract: "List the environment variables runner reads: set or not, and which the jobs still need.",
        discussion: """
            Secrets (keys, tokens, passwords, database URLs) show only whether they are set, never a \
            value. A variable is needed when the job table uses ${VAR} without a default, or when \
            EMAIL_PROVIDER asks for it. Exits 2 when a needed one is missing, so a deploy can run \
            `runner env` as a pre-start check. .env.example lists the same variables.
            """
    )

    @OptionGroup var config: ConfigOptions

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        func isSet(_ name: String) -> Bool { !(environment[name] ?? "").isEmpty }
        var needs: [String: String] = [:]
        var tableOnly: [String] = []
        let tableText = try? String(contentsOfFile: config.path, encoding: .utf8)
        if let text = tableText {
            let catalog = Set(EnvironmentCatalog.all.map(\.name))
            for reference in EnvironmentCatalog.references(inJobTable: text) {
                if !reference.hasDefault { needs[reference.name] = "needed by \(config.path)" }
                if !catalog.contains(reference.name) { tableOnly.append(reference.name) }
            }
        } else if config.config != nil || !(environment["RUNNER_CONFIG"] ?? "").isEmpty {
            throw CommandError("cannot read the job table \(config.path)\nhint: point --config or RUNNER_CONFIG at it")
        }
        for need in EnvironmentCatalog.deliveryNeeds(environment) { needs[need.name] = "needed by \(need.why)" }
        // Webhook channels sign their bodies with WEBHOOK_SECRET: without it they send nothing.
        if tableText?.split(separator: "\n").contains(where: {
            !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") && $0.contains("webhook:")
        }) == true {
            needs["WEBHOOK_SECRET"] = "needed by the webhook channels of \(config.path)"
        }

        let variables =
            EnvironmentCatalog.all.map { ($0.name, $0.group, $0.help) }
            + tableOnly.map { ($0, "jobs.yaml", "Used by the job table") }
        let known = Set(EnvironmentCatalog.all.filter { !$0.secret }.map(\.name))
        let rows = variables.map { name, group, help -> [String] in
            let status: String
            if isSet(name) {
                // A value is shown only for the catalog's settings that hold no secret; a name
                // only the job table knows may hold anything (PGPASSWORD, a webhook URL).
                status = known.contains(name) ? "set: \(Self.shown(environment[name] ?? ""))" : "set"
            } else if let why = needs[name] {
                status = "MISSING (\(why))"
            } else {
                status = "not set"
            }
            return [name, group, status, help]
        }
        print(alignedTable(header: ["VARIABLE", "GROUP", "STATUS", "WHAT"], rows: rows))

        var problems = needs.keys.sorted().filter { !isSet($0) }.map { "\($0) is not set (\(needs[$0] ?? ""))" }
        if problems.isEmpty {
            do {
                _ = try MailerConfiguration.mailer(environment: environment)
            } catch {
                problems.append(error.description)
            }
        }
        guard problems.isEmpty else {
            for problem in problems { printError("error: \(problem)") }
            printError("hint: set them in the environment (see .env.example); secrets never go in jobs.yaml")
            throw ExitCode.usage
        }
    }

    /// A non-secret value as it may be shown: a password in a URL masked, escaped, at most 40
    /// characters.
    static func shown(_ value: String) -> String {
        let escaped = displayEscaped(Redactor.maskURLPasswords(value))
        return escaped.count > 40 ? String(escaped.prefix(37)) + "..." : escaped
    }
}
