/// Reads a query's rows a page at a time through a server-side cursor, on a connection of its
/// own: the server runs the query once (one scan, one sort) and the client holds one page.
///
/// The cursor lives in a read-only transaction on `connection`, which nothing else may use
/// meanwhile; writes the caller makes per page go over another connection, so they commit as
/// they happen and hold no lock for the length of the read.
public struct PostgresCursor: Sendable {
    package let connection: PostgresConnection
    package let pageSize: Int

    public init(on connection: PostgresConnection, pageSize: Int) {
        self.connection = connection
        self.pageSize = max(1, pageSize)
    }

    /// Calls `body` with each page of the query's rows, in order, until they run out or the
    /// task is cancelled; the transaction is ended however `body` ends.
    public func forEachPage(
        _ sql: String, _ parameters: [PostgresValue] = [], _ body: (PostgresRows) async throws -> Void
    ) async throws {
        try await connection.execute("BEGIN READ ONLY")
        do {
            try await connection.query("DECLARE runner_page NO SCROLL CURSOR FOR \(sql)", parameters)
            let fetch = "FETCH FORWARD \(pageSize) FROM runner_page"
            var page = try await connection.execute(fetch)
            // A stopping run reads no further page (the caller closes this connection).
            while page.count > 0, !Task.isCancelled {
                guard page.count == pageSize else {
                    try await body(page)
                    break
                }
                // The server reads the next page while this one is worked on.
                async let next = connection.execute(fetch)
                try await body(page)
                do {
                    page = try await next
                } catch  where Task.isCancelled {
                    // Stopped while the next page was on its way: the pages read are done with.
                    break
                }
            }
            if !Task.isCancelled { try await connection.execute("COMMIT") }
        } catch {
            _ = try? await connection.execute("ROLLBACK")
            throw error
        }
    }
}
