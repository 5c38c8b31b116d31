import Foundation

import Engine
import RunnerSupport
import EmbeddedPostgres

/// A real SMTP server (aiosmtpd, from PyPI) on 127.0.0.1 for one test, storing what it accepts.
package final class TestSMTPServer: @unchecked Sendable {
    // Set once in init; the process is only signalled after.
    package let port: Int
    package let folder: TemporaryDirectory
    /// The certificate a client must trust (with `tls`).
    package let certificateFile: String?
    private let process: Process
    private let input = Pipe()

    package static var script: String {
        TestDatabase.packageRoot.appendingPathComponent("Tests/Servers/smtp_server.py").path
    }

    /// With `tls`, the server offers STARTTLS with a throwaway certificate for 127.0.0.1 (made
    /// by openssl) and requires it; with `auth`, it requires AUTH with these credentials.
    package init(
        failFirst: Int = 0, reject: Bool = false, delay: Double = 0, hangAt: Int = 0, port: Int? = nil,
        tls: Bool = false, auth: (user: String, password: String)? = nil
    ) async throws {
        self.port = try port ?? EmbeddedPostgres.freePort()
        folder = try TemporaryDirectory()
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var arguments = ["python3", Self.script, String(self.port), folder.url.path, "--fail-first", String(failFirst)]
        if reject { arguments.append("--reject") }
        if delay > 0 { arguments += ["--delay", String(delay)] }
        if hangAt > 0 { arguments += ["--hang-at", String(hangAt)] }
        if tls {
            let certificate = folder.url.appendingPathComponent("cert.pem").path
            let key = folder.url.appendingPathComponent("key.pem").path
            let openssl = Process()
            openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            openssl.arguments = [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate,
                "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ]
            openssl.standardError = FileHandle.nullDevice
            try openssl.run()
            let made = try await offPool {
                openssl.waitUntilExit()
                return openssl.terminationStatus
            }
            guard made == 0 else { throw TestDatabaseError("openssl could not make a certificate") }
            arguments += ["--tls-cert", certificate, "--tls-key", key]
            certificateFile = certificate
        } else {
            certificateFile = nil
        }
        if let auth { arguments += ["--auth", "\(auth.user):\(auth.password)"] }
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        // Not the test runner's stderr: a server that outlived a crashed runner would hold that
        // pipe open and keep `swift test` waiting for its end.
        process.standardError = FileHandle.nullDevice
        process.standardInput = input
        try process.run()
        let ready = try await offPool { output.fileHandleForReading.availableData }
        let said = String(decoding: ready, as: UTF8.self)
        guard said.contains("ready") else {
            process.terminate()
            throw TestDatabaseError(
                "the test SMTP server did not start (is aiosmtpd installed? scripts/setup installs it): \(said)")
        }
    }

    /// Waits (without blocking a thread) until the server holds the `hangAt` message.
    package func waitUntilHolding(timeout: Duration = .seconds(60)) async throws {
        let marker = folder.url.appendingPathComponent("holding").path
        let deadline = ContinuousClock.now + timeout
        while !FileManager.default.fileExists(atPath: marker) {
            guard ContinuousClock.now < deadline else {
                throw TestDatabaseError("the SMTP server never held a message")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Lets a held message go on.
    package func release() {
        FileManager.default.createFile(atPath: folder.url.appendingPathComponent("release").path, contents: Data())
    }

    /// Environment variables that point the runner's SMTP mailer at this server.
    package var environment: [String: String] {
        [
            "EMAIL_PROVIDER": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": String(port), "SMTP_SECURITY": "none",
            "SMTP_FROM": "runner@example.com",
        ]
    }

    /// The AUTH attempts the server saw: mechanism, login, and whether TLS was on.
    package func authLog() -> [String] {
        let text = (try? String(contentsOf: folder.url.appendingPathComponent("auth.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    /// The messages received so far, oldest first, as raw RFC 5322 text.
    package func messages() throws -> [String] {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.url.path)
            .filter { $0.hasSuffix(".eml") }.sorted()
        return try names.map { try String(contentsOf: folder.url.appendingPathComponent($0), encoding: .utf8) }
    }

    /// Stops the server and waits until it is gone (a test of a provider that went away).
    package func stop() async throws {
        guard endServer(process, input: input) else { return }
        let process = self.process
        try await offPool { process.waitUntilExit() }
    }

    deinit { reapInBackground(process, input: input) }
}

/// Decodes the base64 body parts of a message the runner sent.
package func decodedParts(_ message: String) -> (text: String, html: String) {
    var text = ""
    var html = ""
    for part in message.components(separatedBy: "--runner-").dropFirst() {
        guard let blank = part.range(of: "\r\n\r\n") else { continue }
        let body = part[blank.upperBound...].replacingOccurrences(of: "\r\n", with: "")
        let decoded =
            Data(base64Encoded: String(body.prefix { $0 != "-" })).map { String(decoding: $0, as: UTF8.self) } ?? ""
        if part.contains("text/plain") { text = decoded } else if part.contains("text/html") { html = decoded }
    }
    return (text, html)
}

/// A header of a message as a reader sees it: folded lines joined, RFC 2047 words decoded.
package func headerValue(_ name: String, in message: String) -> String? {
    let head = message.components(separatedBy: "\r\n\r\n").first ?? ""
    var lines: [String] = []
    for line in head.components(separatedBy: "\r\n") {
        if line.hasPrefix(" ") || line.hasPrefix("\t"), !lines.isEmpty {
            lines[lines.count - 1] += line
        } else {
            lines.append(line)
        }
    }
    guard let line = lines.first(where: { $0.lowercased().hasPrefix(name.lowercased() + ":") }) else { return nil }
    let value = line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)
    // Encoded words, with the whitespace between adjacent ones dropped (RFC 2047, section 6.2).
    var decoded = ""
    var rest = Substring(value)
    var lastWasWord = false
    while let start = rest.range(of: "=?UTF-8?B?") {
        let between = rest[..<start.lowerBound]
        if !(lastWasWord && between.allSatisfy(\.isWhitespace)) { decoded += between }
        guard let end = rest[start.upperBound...].range(of: "?=") else { break }
        let data = Data(base64Encoded: String(rest[start.upperBound..<end.lowerBound])) ?? Data()
        decoded += String(decoding: data, as: UTF8.self)
        rest = rest[end.upperBound...]
        lastWasWord = true
    }
    return decoded + rest
}
