import Foundation
import Ledger
import Processes
import Redaction
import RunnerSupport

/// A `command:` job: its argv, run without a shell, with the run's id and slot in the environment.
package struct CommandWork: RunWork {
    package let argv: [String]
    /// The argv as the job table writes it (`${VAR}` unexpanded): what outcomes may show.
    package let written: [String]
    package let environment: [String: String]

    package func perform(_ run: RunInfo) async -> RunResult {
        if run.dryRun {
            // A command's effects cannot be switched off, so a dry run does not start it.
            return RunResult(
                status: .succeeded, outcome: ["dry_run": true, "would_run": Storable.argv(written)])
        }
        var environment = self.environment
        environment["RUNNER_RUN_ID"] = String(run.runID)
        environment["RUNNER_SLOT"] = Ledger.slotKey(for: run.slot)
        environment["RUNNER_JOB"] = run.job.name
        // SIGKILL 2 s after SIGTERM: well inside the executor's 5 s grace, so the report (exit
        // status, output) is in the record.
        // Its process group dies with the runner (kill -9 included) and stops when the runner is
        // frozen past its lease's fence: a retry elsewhere never overlaps it.
        let process = CommandProcess(
            argv: argv, environment: environment, killGrace: RunBudget.killGrace, killsEscapedDescendants: true,
            diesWithRunner: true, frozenLimit: run.budget.fenceAfter)
        let result: CommandProcess.Result
        do {
            result = try await process.run()
        } catch {
            return RunResult(
                status: .failed, outcome: ["argv": Storable.argv(written)],
                error: "\(Storable.text(written.first ?? "", limit: 512)) could not start: \(Self.reason(error))")
        }
        var outcome: [String: JSONValue] = [
            "stdout_tail": .string(result.stdoutTail), "stderr_tail": .string(result.stderrTail),
        ]
        var metrics = [
            Metric("stdout_bytes", Double(result.stdoutBytes), unit: "bytes"),
            Metric("stderr_bytes", Double(result.stderrBytes), unit: "bytes"),
        ]
        if let code = result.exitCode {
            outcome["exit_code"] = .number(Double(code))
            metrics.append(Metric("exit_code", Double(code)))
        }
        if let signal = result.signal { outcome["signal"] = .number(Double(signal)) }
        if result.escapedKilled > 0 { outcome["escaped_processes_killed"] = .number(Double(result.escapedKilled)) }
        if result.outputAbandoned { outcome["output_abandoned"] = true }
        let status: RunStatus
        let error: String?
        switch (result.exitCode, result.signal) {
        case (0?, _):
            (status, error) = (.succeeded, nil)
        case (let code?, _):
            (status, error) = (.failed, "exit code \(code)" + Self.lastLines(of: result.stderrTail))
        case (nil, let signal?):
            (status, error) = (.failed, "killed by signal \(signal)")
        default:
            (status, error) = (.failed, "ended without an exit status")
        }
        return RunResult(status: status, outcome: .object(outcome), error: error, metrics: metrics)
    }

    /// The last 20 lines of a command's standard error, for its run's error (one line: after a
    /// colon; more: each on a line of its own).
    package static func lastLines(of stderr: String, count: Int = 20) -> String {
        let lines = stderr.split(separator: "\n", omittingEmptySubsequences: true).suffix(count)
        if lines.count <= 1 { return lines.first.map { ": \($0)" } ?? "" }
        return ":\n" + lines.joined(separator: "\n")
    }

    /// Why a command could not start, without its expanded arguments (they may hold secrets).
    package static func reason(_ error: Error) -> String {
        if let failure = error as? CommandProcess.SpawnError { return failure.reason }
        return "it could not be started"
    }
}
