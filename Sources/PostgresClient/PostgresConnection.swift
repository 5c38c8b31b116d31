import CLibPQ
import Foundation
import RunnerSupport

/// One libpq connection, owned by an actor that runs on its own thread: every blocking libpq
/// call happens there, never on Swift's cooperative pool.
///
/// A connection opened with `cancelsWithTask` (an agent's connection to its product's data)
/// cancels a statement when the awaiting task is cancelled: `PQcancel` reaches the server from
/// the cancelling thread while the actor's thread waits for the answer. The ledger's own
/// connection does not: the end of a stopped run must still be written. A connection the
/// server dropped (a restart) is reset before the next statement.
public actor PostgresConnection {
    private let executor: QueueExecutor
    /// Owned by this actor alone; freed in the isolated deinit.
    private var connection: OpaquePointer?
    public nonisolated let target: String
    /// Asks the server to cancel the running statement; usable from any thread.
    private nonisolated let canceller = Canceller()
    /// Whether a cancelled task cancels its statement.
    public nonisolated let cancelsWithTask: Bool

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.asUnownedSerialExecutor()
    }

    private init(target: String, cancelsWithTask: Bool) {
        self.target = target
        self.cancelsWithTask = cancelsWithTask
        executor = QueueExecutor(label: "runner.postgres")
    }

    /// Connects, and pins the session settings output parsing depends on (TimeZone UTC,
    /// DateStyle ISO, IntervalStyle postgres, extra_float_digits 3, client_encoding UTF8), so
    /// that no server or database default changes how a timestamp or number reads.
    public static func connect(
        _ connectionString: ConnectionString, applicationName: String = "runner", cancelsWithTask: Bool = false
    ) async throws(PostgresError) -> PostgresConnection {
        try connectionString.validate()
        let connection = PostgresConnection(target: connectionString.redacted, cancelsWithTask: cancelsWithTask)
        try await connection.open(connectionString.raw, applicationName: applicationName)
        return connection
    }

    private func open(_ raw: String, applicationName: String) throws(PostgresError) {
        // Defaults first, the user's string last: with expand_dbname its settings win.
        // TCP keepalives and a user timeout: a heartbeat on a connection whose server vanished
        // (a failover, a cut network) fails within seconds instead of hanging (ignored on sockets).
        let keywords = [
            "application_name", "connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count",
            "tcp_user_timeout", "dbname",
        ]
        let values = [applicationName, "10", "5", "2", "3", "10000", raw]
        let handle = withCStrings(keywords) { keywordPointers in
            withCStrings(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let handle, PQstatus(handle) == CONNECTION_OK else {
            let reason = handle.map { Self.cleanMessage(PQerrorMessage($0)) } ?? "out of memory"
            if let handle { PQfinish(handle) }
            throw PostgresError(.connection, "cannot connect to Postgres at \(target): \(reason)")
        }
        runner_pq_silence_notices(handle)
        connection = handle
        try startSession(handle)
    }

    /// Settings a caller added with ``setSessionDefaults(_:)``: replayed after a reset.
    private var sessionDefaults: [String] = []

    /// What every session (and every reset one) starts with.
    private func startSession(_ handle: OpaquePointer) throws(PostgresError) {
        canceller.set(PQgetCancel(handle))
        // Everything the parsing of output depends on, whatever the server or database says.
        _ = try rows(of: PQexec(handle, Self.sessionSettings), on: handle)
        for sql in sessionDefaults { _ = try rows(of: PQexec(handle, sql), on: handle) }
    }

    /// Runs `sql` (SET statements) now and again whenever the connection is reset.
    public func setSessionDefaults(_ sql: String) throws(PostgresError) {
        try execute(sql)
        sessionDefaults.append(sql)
    }

    isolated deinit {
        canceller.set(nil)
        if let connection { PQfinish(connection) }
    }

    /// Closes the connection now; later calls fail.
    public func close() {
        canceller.set(nil)
        if let connection { PQfinish(connection) }
        connection = nil
    }

    /// Runs one statement, cancelled on the server if the awaiting task is cancelled.
    @discardableResult
    public nonisolated func query(_ sql: String, _ parameters: [PostgresValue] = []) async throws(PostgresError)
        -> PostgresRows
    {
        try await cancellable { connection throws(PostgresError) in try connection.query(sql, parameters) }
    }

    /// Runs statements without parameters, cancelled on the server with the awaiting task.
    @discardableResult
    public nonisolated func execute(_ sql: String) async throws(PostgresError) -> PostgresRows {
        try await cancellable { connection throws(PostgresError) in try connection.execute(sql) }
    }

    private nonisolated func cancellable(
        _ body: @Sendable (isolated PostgresConnection) throws(PostgresError) -> PostgresRows
    ) async throws(PostgresError) -> PostgresRows {
        guard cancelsWithTask else { return try await self.run(body).get() }
        if Task.isCancelled { throw Self.cancelled }
        let canceller = self.canceller
        let result: Result<PostgresRows, PostgresError> = await withTaskCancellationHandler {
            await self.run(body)
        } onCancel: {
            canceller.cancel()
        }
        return try result.get()
    }

    private func run(_ body: @Sendable (isolated PostgresConnection) throws(PostgresError) -> PostgresRows) -> Result<
        PostgresRows, PostgresError
    > {
        // Cancelled while it waited for this connection's thread: its cancel reached nothing.
        if cancelsWithTask && Task.isCancelled { return .failure(Self.cancelled) }
        do throws(PostgresError) {
            return .success(try body(self))
        } catch {
            return .failure(error)
        }
    }

    static let sessionSettings = """
        SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, MDY'; SET IntervalStyle TO 'postgres';
        SET extra_float_digits TO 3; SET client_encoding TO 'UTF8'
        """

    package static let cancelled = PostgresError(.query, "canceling statement: the run is stopping", sqlState: "57014")

    /// Runs one statement with `$1…` parameters sent separately from the SQL text.
    @discardableResult
    public func query(_ sql: String, _ parameters: [PostgresValue] = []) throws(PostgresError) -> PostgresRows {
        let connection = try open()
        let texts = parameters.map(\.text)
        let result: OpaquePointer? = withOptionalCStrings(texts) { pointers in
            PQexecParams(connection, sql, Int32(texts.count), nil, pointers, nil, nil, 0)
        }
        return try rows(of: result, on: connection)
    }

    /// Runs statements without parameters (several may be separated by semicolons).
    @discardableResult
    public func execute(_ sql: String) throws(PostgresError) -> PostgresRows {
        let connection = try open()
        return try rows(of: PQexec(connection, sql), on: connection)
    }

    private func open() throws(PostgresError) -> OpaquePointer {
        guard let connection else { throw PostgresError(.connection, "the connection to \(target) is closed") }
        if PQstatus(connection) != CONNECTION_OK {
            // The server went away (a restart, a failover): connect again with the same settings.
            PQreset(connection)
            guard PQstatus(connection) == CONNECTION_OK else {
                throw PostgresError(
                    .connection, "lost the connection to \(target): \(Self.cleanMessage(PQerrorMessage(connection)))")
            }
            try startSession(connection)
        }
        return connection
    }

    /// The rows of a finished statement, or its error; clears the result either way.
    private func rows(of result: OpaquePointer?, on connection: OpaquePointer) throws(PostgresError) -> PostgresRows {
        guard let result else {
            throw PostgresError(
                .connection, "lost the connection to \(target): \(Self.cleanMessage(PQerrorMessage(connection)))")
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PostgresRows(result)
        default:
            let sqlState = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let message = Self.cleanMessage(PQresultErrorMessage(result))
            // The session is gone when libpq says so, or when the server ended it: no SQLSTATE (the
            // socket closed), class 08, or 57P01-57P03 (shutdown, crash, cannot connect now).
            let lost =
                PQstatus(connection) != CONNECTION_OK || sqlState == nil || sqlState?.hasPrefix("08") == true
                || ["57P01", "57P02", "57P03"].contains(sqlState ?? "")
            let kind: PostgresError.Kind = lost ? .connection : .query
            throw PostgresError(kind, message, sqlState: sqlState)
        }
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    /// Runs `body` on this connection's thread, once every statement queued before it has run:
    /// what it checks there holds for the statements it then runs.
    public func inTurn<T: Sendable>(_ body: @Sendable (isolated PostgresConnection) throws -> T) throws -> T {
        try body(self)
    }

    public func transaction<T: Sendable>(
        _ body: @Sendable (isolated PostgresConnection) throws -> T
    ) throws -> T {
        try transactionBlock(body)
    }

    /// Runs `body` in one transaction when its statements await other work between them (pages
    /// read elsewhere): committed when it returns a value, rolled back when it returns nil or
    /// throws. Nothing else may use the connection meanwhile: its statements would join it.
    public nonisolated func transaction<T: Sendable>(awaiting body: () async throws -> T?) async throws -> T? {
        try await execute("BEGIN")
        do {
            guard let value = try await body() else {
                try await execute("ROLLBACK")
                return nil
            }
            try await execute("COMMIT")
            return value
        } catch {
            _ = try? await execute("ROLLBACK")
            throw error
        }
    }

    private func transactionBlock<T: Sendable>(
        _ body: @Sendable (isolated PostgresConnection) throws -> T
    ) throws -> T {
        try execute("BEGIN")
        do {
            let value = try body(self)
            try execute("COMMIT")
            return value
        } catch {
            _ = try? execute("ROLLBACK")
            throw error
        }
    }

    /// The server's verifier for `password` (SCRAM-SHA-256 by default), computed here: an
    /// `ALTER ROLE … PASSWORD` with it never sends the password itself.
    public func encryptedPassword(_ password: String, user: String) throws(PostgresError) -> String {
        let connection = try open()
        guard let encrypted = PQencryptPasswordConn(connection, password, user, nil) else {
            throw PostgresError(.query, "cannot encrypt a password: \(Self.cleanMessage(PQerrorMessage(connection)))")
        }
        defer { PQfreemem(encrypted) }
        return String(cString: encrypted)
    }

    /// True if the connection still answers.
    public func isAlive() -> Bool {
        (try? execute("SELECT 1")) != nil
    }

    private static func cleanMessage(_ pointer: UnsafePointer<CChar>?) -> String {
        guard let pointer else { return "unknown error" }
        return String(cString: pointer).trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: "\n", with: " ")
            .replacingOccurrences(of: "ERROR:  ", with: "")
    }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    withOptionalCStrings(strings.map { Optional($0) }, body)
}

/// Passes an array of optional strings as a C array of `const char *` (NULL for nil), plus a
/// terminating NULL.
private func withOptionalCStrings<R>(
    _ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R
) -> R {
    let duplicated: [UnsafeMutablePointer<CChar>?] = strings.map { $0.flatMap { strdup($0) } }
    defer { duplicated.forEach { free($0) } }
    var pointers: [UnsafePointer<CChar>?] = duplicated.map { $0.map { UnsafePointer($0) } }
    pointers.append(nil)
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// A `PGcancel` handle, replaced when the connection is (re)opened; `PQcancel` is safe to call
/// from any thread while another thread waits on the connection.
private final class Canceller: Sendable {
    private let handle = Locked<OpaquePointer?>(nil)

    package func set(_ new: OpaquePointer?) {
        handle.withLock { handle in
            if let handle { PQfreeCancel(handle) }
            handle = new
        }
    }

    /// Sends the cancel from a thread of its own: `PQcancel` connects to the server and may
    /// wait on it, which must delay neither the cancelling task nor the cooperative pool.
    package func cancel() {
        // `self` kept alive by the thread: its deinit frees the handle.
        Thread.detachNewThread { [self] in
            handle.withLock { handle in
                guard let handle else { return }
                var buffer = [CChar](repeating: 0, count: 256)
                _ = PQcancel(handle, &buffer, Int32(buffer.count))
            }
        }
    }

    deinit {
        handle.withLock { handle in
            if let handle { PQfreeCancel(handle) }
            handle = nil
        }
    }
}
