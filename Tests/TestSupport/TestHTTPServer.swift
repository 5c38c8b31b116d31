import Foundation

import Engine
import RunnerSupport
import EmbeddedPostgres

/// A local HTTP server speaking a provider's documented format (answers from `routes`), which
/// logs every request it receives so tests can check them.
package final class TestHTTPServer: @unchecked Sendable {
    // Set once in init.
    package let port: Int
    package let folder: TemporaryDirectory
    private let process: Process
    private let input: Pipe

    package var baseURL: String { "http://127.0.0.1:\(port)" }

    /// `hmacSecret`: requests signed with `X-Runner-Signature` are checked with it (logged as
    /// `signature_ok`).
    package init(routes: JSONValue, hmacSecret: String? = nil) async throws {
        folder = try TemporaryDirectory()
        let routesFile = try folder.write("routes.json", routes.text)
        // A port found free may be taken by another test before the server binds it: then a new one.
        var attempt = 0
        while true {
            attempt += 1
            let port = try EmbeddedPostgres.freePort()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments =
                [
                    "python3", TestDatabase.packageRoot.appendingPathComponent("Tests/Servers/http_server.py").path,
                    String(port), routesFile.path, folder.url.appendingPathComponent("requests.jsonl").path,
                ] + (hmacSecret.map { [$0] } ?? [])
            let output = Pipe()
            process.standardOutput = output
            // Not the test runner's stderr: a server that outlived a crashed runner would hold that
            // pipe open and keep `swift test` waiting for its end.
            process.standardError = FileHandle.nullDevice
            let input = Pipe()
            process.standardInput = input
            try process.run()
            // Until it says ready, or its output ends (it could not start): however slow its start.
            let ready = try await offPool { () -> Bool in
                var seen = ""
                while true {
                    let data = output.fileHandleForReading.availableData
                    if data.isEmpty { return false }
                    seen += String(decoding: data, as: UTF8.self)
                    if seen.contains("ready") { return true }
                }
            }
            if ready {
                (self.port, self.process, self.input) = (port, process, input)
                return
            }
            reapInBackground(process, input: input)
            guard attempt < 5 else { throw TestDatabaseError("the test HTTP server did not start") }
        }
    }

    /// Every request so far: method, path, headers, body.
    package func requests() throws -> [JSONValue] {
        let file = folder.url.appendingPathComponent("requests.jsonl")
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { JSONValue.parse(String($0)) }
    }

    /// The server stops when its stdin closes; SIGKILL as well, since a child spawned from a
    /// thread that blocks SIGTERM inherits the block.
    deinit { reapInBackground(process, input: input) }
}
