import ArgumentParser
import Foundation
import JobTable
import Ledger
import Processes
import Engine
import RunnerSupport
import StandardAgents

@main
struct Runner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runner",
        abstract: "Run scheduled jobs from jobs.yaml, each slot exactly once.",
        discussion: """
            Jobs are listed in jobs.yaml (or the file named by --config or RUNNER_CONFIG). Without \
            DATABASE_URL the runner starts its own PostgreSQL in .runner/.

            Exit codes: 0 success or nothing to do, 1 a run failed, 2 usage or configuration error, \
            3 database unreachable.
            """,
        version: RunnerVersion.current,
        subcommands: [
            Check.self, Next.self, Migrate.self, Once.self, ScheduleCommand.self, BackfillCommand.self, History.self,
            Status.self, Outbox.self, Preview.self,
            Demo.self,
            Pause.self, Resume.self, Missed.self,
            Db.self, Env.self,
        ]
    )

    /// Usage errors exit 2, as configuration errors do, rather than ArgumentParser's 64.
    static func main() async {
        // This process starts children only through CommandProcess: any other child that exits
        // is an adopted orphan (PID 1 in a container, or the commands' subreaper) to reap.
        ChildProcesses.shared.reapsOrphans = true
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CommandError {
            printError("error: \(error.message)")
            Foundation.exit(error.code.rawValue)
        } catch let error as LedgerError {
            // A ledger row this runner cannot read, or a ledger that contradicts itself.
            printError("error: \(error)")
            Foundation.exit(ExitCode.runFailed.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                printError(Self.errorStyle(fullMessage(for: error)))
                Foundation.exit(ExitCode.usage.rawValue)
            }
            exit(withError: error)
        }
    }
}

extension Runner {
    /// ArgumentParser's `Error: Give either…` in runner's one style: `error: give either…`, the
    /// usage it adds on the lines after.
    static func errorStyle(_ message: String) -> String {
        guard message.hasPrefix("Error: ") else { return message }
        let rest = message.dropFirst("Error: ".count)
        guard let first = rest.first else { return "error:" }
        // Lower-case a sentence's first word, not an option or a name (`--limit`, `DATABASE_URL`).
        let second = rest.dropFirst().first
        let lowered = second.map { $0.isLowercase } == true ? first.lowercased() : String(first)
        return "error: " + lowered + rest.dropFirst()
    }
}

extension ExitCode {
    /// A run failed or timed out.
    static let runFailed = ExitCode(1)
    /// Bad arguments or a bad job table.
    static let usage = ExitCode(2)
}

/// A failure a command explains in one sentence, with its exit code; no usage text follows.
/// Printed as `error: …`, with `hint: …` (what to do) on the next line when there is one.
struct CommandError: Error {
    let message: String
    let code: ExitCode

    init(_ message: String, hint: String? = nil, code: ExitCode = .usage) {
        self.message = message + (hint.map { "\nhint: \($0)" } ?? "")
        self.code = code
    }
}

/// Writes a line to standard error, through the terminal sanitiser (an error may quote a job
/// name from the YAML or a value from the database).
func printError(_ message: String) {
    FileHandle.standardError.write(Data((TerminalText.safe(message) + "\n").utf8))
}

/// The `--config` option every command that reads the job table shares.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "The job table (default: $RUNNER_CONFIG, else ./jobs.yaml).")
    var config: String?

    var path: String { config ?? JobTableLoader.defaultPath() }

    /// One job of the validated job table; an unknown name is a usage error that lists the jobs.
    func loadJob(named name: String) throws -> Job {
        try job(named: name, in: try load())
    }

    /// One job of the validated job table, with the table's namespace.
    func loadJobAndNamespace(named name: String) throws -> (job: Job, namespace: String) {
        let table = try load()
        return (try job(named: name, in: table), table.namespace)
    }

    /// Whether a job table is there to read: named, or the default file. Commands that only
    /// read the ledger work without one (in the default namespace).
    var hasTable: Bool { config != nil || FileManager.default.fileExists(atPath: path) }

    /// The table's namespace when there is a table; else `default`.
    func namespace() throws -> String {
        hasTable ? try load().namespace : JobTable.defaultNamespace
    }

    /// One job of a table already loaded; an unknown name is a usage error that lists the jobs.
    func job(named name: String, in table: JobTable) throws -> Job {
        guard let job = table.job(named: name) else {
            throw CommandError(
                "no job \"\(name)\" in \(table.path)",
                hint: "its jobs: \(table.jobs.map(\.name).joined(separator: ", "))")
        }
        return job
    }

    /// The validated job table; on errors prints them all and exits 2.
    func load() throws -> JobTable {
        do {
            return try JobTableLoader(agents: .standard).load(path: path)
        } catch {
            if let hint = error.hint, let problem = error.diagnostics.first {
                printError("error: \(error.path): \(problem.message)")
                printError("hint: \(hint)")
                throw ExitCode.usage
            }
            printError(error.description)
            let count = error.diagnostics.count
            printError("\(count) error\(count == 1 ? "" : "s") in \(error.path); nothing was run")
            throw ExitCode.usage
        }
    }
}
