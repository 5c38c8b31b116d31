import ArgumentParser
import Foundation
import JobTable
import Ledger
import Logging
import Outbox
import PostgresClient
import Redaction
import Engine
import StatusServer
import RunnerSupport

extension LogfmtLogHandler.Format: ExpressibleByArgument {}
extension RunStatus: ExpressibleByArgument {}

/// Options of every command that talks to the database.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("log-format"), help: "Log lines as logfmt or json, on stderr.")
    var logFormat: LogfmtLogHandler.Format = .logfmt

    var logger: Logger {
        let format = logFormat
        var logger = Logger(label: "runner") { LogfmtLogHandler(label: $0, format: format) }
        logger.logLevel =
            ProcessInfo.processInfo.environment["RUNNER_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
            ?? .info
        return logger
    }

    var database: Database { Database(logger: logger) }

    /// Connects (DATABASE_URL or the embedded default), mapping failures to exit codes 2 and 3.
    func connect(requireSchema: Bool = true) async throws -> PostgresConnection {
        try await connectReturningURL(requireSchema: requireSchema).connection
    }

    func connectReturningURL(requireSchema: Bool = true) async throws -> (
        connection: PostgresConnection, url: ConnectionString
    ) {
        do {
            return try await database.connectReturningURL(requireSchema: requireSchema)
        } catch let failure as Database.Failure {
            switch failure {
            case .schemaOutdated, .schemaNewer, .invalidURL, .refused:
                throw CommandError(failure.description, code: .usage)
            case .unreachable, .embedded: throw CommandError(failure.description, code: .databaseUnreachable)
            }
        } catch let error as PostgresError {
            throw CommandError(error.message, code: error.kind == .connection ? .databaseUnreachable : .runFailed)
        }
    }
}

extension DatabaseOptions {
    /// Connects as ``connectReturningURL(requireSchema:)`` does, but while the server cannot be
    /// reached (not refused: a bad password or a missing database fails at once) tries again with
    /// backoff, from half a second up to 30 s, logging once when it starts waiting and once when
    /// the database answers. `waiting` starts while it waits, and is stopped before returning;
    /// `stopped` ends the wait (nil is returned).
    func connectWaiting(
        waiting: () async throws -> StatusServer.Running?, stopped: @escaping @Sendable () -> Bool
    ) async throws -> (connection: PostgresConnection, url: ConnectionString)? {
        var delay: Duration = .milliseconds(500)
        var since: ContinuousClock.Instant?
        var server: StatusServer.Running?
        while true {
            do {
                let connected = try await database.connectReturningURL()
                if let since {
                    logger.notice(
                        "the database answers; starting",
                        metadata: ["waited_ms": "\(Int64((ContinuousClock.now - since).timeInterval * 1000))"])
                }
                await server?.stop()
                return connected
            } catch Database.Failure.unreachable(let message) {
                if since == nil {
                    since = .now
                    logger.error(
                        "the database does not answer; waiting for it (tried again with backoff up to 30 s)",
                        metadata: ["error": "\(message)"])
                    server = try await waiting()
                }
            } catch let error as Database.Failure {
                await server?.stop()
                throw CommandError(error.description, code: .usage)
            } catch {
                await server?.stop()
                throw error
            }
            // Slept in slices, so a stop is seen within a tenth of a second.
            let until = ContinuousClock.now + delay
            while ContinuousClock.now < until, !stopped() { try? await Task.sleep(for: .milliseconds(100)) }
            if stopped() {
                await server?.stop()
                return nil
            }
            delay = min(delay * 2, .seconds(30))
        }
    }

    /// Looks for the table's missed slots as every `runner once` does, recording them and their
    /// notifications (the next `runner once` or scheduler sends those).
    func recordMissedSlots(of table: JobTable, ledger: Ledger, now: Date) async throws {
        let notifier = Notifier(ledger: ledger, environment: ProcessInfo.processInfo.environment, logger: logger)
        try await MissedSlots.record(jobs: table.jobs, ledger: ledger, now: now, notifier: notifier)
    }
}

extension ExitCode {
    /// The database could not be reached.
    static let databaseUnreachable = ExitCode(3)
}

/// `2026-11-22T04:30:00Z`, for tables.
func utc(_ date: Date?) -> String {
    guard let date else { return "-" }
    return Ledger.slotKey(for: date)
}

/// `850 ms`, `12.4 s`, `3m05s`.
func humanDuration(milliseconds: Int64?) -> String {
    guard let milliseconds else { return "-" }
    if milliseconds < 1000 { return "\(milliseconds) ms" }
    if milliseconds < 60_000 { return String(format: "%.1f s", Double(milliseconds) / 1000) }
    return DurationParser.format(.seconds(milliseconds / 1000))
}

/// Left-aligned columns separated by two spaces.
func alignedTable(header: [String], rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}

/// `--limit` of the listing commands: 1 to 100000 (a larger one overflows the server's integer).
func validateLimit(_ limit: Int) throws {
    guard (1...100_000).contains(limit) else { throw ValidationError("--limit must be from 1 to 100000.") }
}

/// `--embedded`, of the commands a platform runs (`once`, `schedule`, `backfill`, `migrate`): the
/// embedded default is for a person at a terminal. With `DATABASE_URL` unset and no terminal on
/// stdin, these commands stop before touching anything unless asked for it, so a variable
/// forgotten on a platform never becomes a ledger that dies with its container.
struct EmbeddedOptions: ParsableArguments {
    @Flag(help: "With DATABASE_URL unset, use the embedded PostgreSQL even with no terminal (or RUNNER_EMBEDDED=1).")
    var embedded = false

    /// Throws the usage error when the embedded default would be used without a person or an opt-in.
    func check(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard (environment["DATABASE_URL"] ?? "").isEmpty else { return }
        if embedded || environment["RUNNER_EMBEDDED"] == "1" || isatty(STDIN_FILENO) == 1 { return }
        throw CommandError(
            "DATABASE_URL is not set, and stdin is not a terminal: refusing to start an embedded PostgreSQL "
                + "that would vanish with this machine",
            hint: "set DATABASE_URL to the ledger's database (postgres://user:password@host:5432/db); "
                + "to use the embedded one anyway, pass --embedded or set RUNNER_EMBEDDED=1")
    }
}

/// `--namespace` and `--all-namespaces`, of the commands that show the ledger (`history`,
/// `status`, `missed`): by default they show the job table's namespace alone.
struct NamespaceOptions: ParsableArguments {
    @Option(help: "Show this namespace's jobs (default: the job table's namespace:, else default).")
    var namespace: String?

    @Flag(name: .customLong("all-namespaces"), help: "Show every namespace of the ledger, with a NAMESPACE column.")
    var allNamespaces = false

    func validate() throws {
        if namespace != nil, allNamespaces {
            throw ValidationError("--namespace and --all-namespaces cannot be used together.")
        }
        if let namespace, !JobTable.isValidNamespace(namespace) {
            throw ValidationError("--namespace must be 1 to 64 characters of a-z, 0-9, '_' and '-'.")
        }
    }

    /// The namespace asked for, else the table's (`default` without a table).
    func resolved(_ config: ConfigOptions) throws -> String {
        try namespace ?? config.namespace()
    }
}
