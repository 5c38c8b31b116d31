import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import EmbeddedPostgres
@testable import Processes
import TestSupport

/// The embedded default is private to the user who made it (issue "hostile data", rows 3 and 16).
@Suite("The embedded cluster's privacy")
struct EmbeddedPrivacyTests {
    static func mode(_ path: String) -> (mode: UInt32, owner: UInt32)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (UInt32(info.st_mode) & 0o7777, info.st_uid)
    }

    static func psql(_ cluster: EmbeddedPostgres, _ conninfo: String, as user: String?) async throws -> CommandProcess.Result {
        let psql = try cluster.binary("psql")
        let argv = (user.map { ["/usr/sbin/runuser", "-u", $0, "--"] } ?? []) + [
            // A program that reads what it is sent: one that exits first (id) fails the COPY with EPIPE.
            psql, conninfo, "-tAc", "COPY (SELECT 1) TO PROGRAM 'cat >/dev/null'",
        ]
        return try await CommandProcess(argv: argv, environment: ["PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "5"]).run()
    }

    @Test("rows 3 and 16: socket and password keep other users out; a stale postmaster.pid and a planted socket folder are survived")
    func privateCluster() async throws {
        let directory = try TemporaryDirectory()
        // A home whose socket path would pass the 107-byte limit: the socket goes to /tmp.
        let home = directory.url.appendingPathComponent("home-" + String(repeating: "h", count: 48))
        let cluster = EmbeddedPostgres(home: home, fast: true)
        try await cluster.start()
        let serverUID = geteuid() == 0 ? getpwnam("postgres").pointee.pw_uid : geteuid()

        let socket = cluster.socketDirectory.path
        #expect(socket.hasPrefix("/tmp/runner-pg-"))
        #expect(!socket.hasSuffix(EmbeddedPostgres.shortHash(cluster.clusterDirectory.appendingPathComponent("socket").path)))
        #expect(Self.mode(socket)?.mode == 0o700)
        #expect(Self.mode(socket)?.owner == serverUID)
        let socketFile = try #require(
            try FileManager.default.contentsOfDirectory(atPath: socket).first { $0.hasPrefix(".s.PGSQL.") && !$0.hasSuffix(".lock") })
        #expect(Self.mode(socket + "/" + socketFile)?.mode == 0o700)
        #expect(Self.mode(cluster.passwordFile.path)?.mode == 0o600)
        let url = cluster.connectionString()
        #expect(!url.raw.contains(try String(contentsOf: cluster.passwordFile, encoding: .utf8).split(separator: ":").last!.trimmingCharacters(in: .newlines)))

        // The runner's own connection works; the same without the password file is refused.
        let connection = try await PostgresConnection.connect(url)
        #expect(try await connection.query("SELECT 1 AS one").first?.int("one") == 1)
        await connection.close()
        let port = cluster.port
        let noPassword = "host=\(socket) port=\(port) user=runner dbname=postgres"
        let refused = try await Self.psql(cluster, noPassword, as: nil)
        #expect(refused.exitCode != 0)
        #expect(refused.stderrTail.contains("password"))

        // Stopped; then another process takes the old server's number, and someone plants a
        // world-writable folder where the socket folder was.
        try await cluster.stop()
        let squatter = Process()
        squatter.executableURL = URL(fileURLWithPath: geteuid() == 0 ? "/usr/sbin/runuser" : "/bin/sleep")
        squatter.arguments = geteuid() == 0 ? ["-u", "postgres", "--", "/bin/sleep", "120"] : ["120"]
        // Its output is not the test runner's: a sleep left behind would hold `swift test`'s
        // pipes open, and `swift test` waits for them to close.
        squatter.standardOutput = FileHandle.nullDevice
        squatter.standardError = FileHandle.nullDevice
        try squatter.run()
        var sleeper = squatter.processIdentifier
        // runuser's child outlives runuser's SIGKILL: both go.
        defer {
            kill(squatter.processIdentifier, SIGKILL)
            if sleeper != squatter.processIdentifier { kill(sleeper, SIGKILL) }
        }
        for _ in 0..<50 {
            // runuser forks the program: the number that matters is the sleep's own.
            let children = (try? String(contentsOfFile: "/proc/\(squatter.processIdentifier)/task/\(squatter.processIdentifier)/children", encoding: .utf8)) ?? ""
            if let child = children.split(separator: " ").first.flatMap({ Int32($0) }) {
                sleeper = child
                break
            }
            if geteuid() != 0 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let pidFile = cluster.dataDirectory.appendingPathComponent("postmaster.pid")
        try "\(sleeper)\n\(cluster.dataDirectory.path)\n0\n\(port)\n\(socket)\n\n".write(to: pidFile, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: socket)
        try FileManager.default.createDirectory(atPath: socket, withIntermediateDirectories: false)
        chmod(socket, 0o777)

        try await cluster.start()
        #expect(await cluster.isRunning())
        #expect(cluster.socketDirectory.path != socket)
        #expect(Self.mode(cluster.socketDirectory.path)?.mode == 0o700)
        #expect(kill(sleeper, 0) == 0, "the process that took the old number is left alone")
        let again = try await PostgresConnection.connect(cluster.connectionString())
        #expect(try await again.query("SELECT 1 AS one").first?.int("one") == 1)
        await again.close()
        try await cluster.stop()
        try? FileManager.default.removeItem(atPath: socket)
        try? FileManager.default.removeItem(at: cluster.socketDirectory)
    }

    @Test("row 3: another local user (nobody) cannot connect, with or without the password file", .enabled(if: geteuid() == 0))
    func otherUser() async throws {
        let directory = try TemporaryDirectory()
        let cluster = EmbeddedPostgres(home: directory.url.appendingPathComponent("home"), fast: true)
        try await cluster.start()
        let socket = cluster.socketDirectory.path
        for conninfo in ["host=\(socket) port=\(cluster.port) user=runner dbname=postgres", cluster.connectionString().raw] {
            let nobody = try await Self.psql(cluster, conninfo, as: "nobody")
            #expect(nobody.exitCode != 0, "nobody connected: \(nobody.stdoutTail)")
            #expect(!nobody.stdoutTail.contains("uid="))
        }
        // The same statement as the cluster's owner works: the refusal above is about the user.
        let owner = try await Self.psql(cluster, cluster.connectionString().raw, as: nil)
        #expect(owner.exitCode == 0, "\(owner.stderrTail)")
        try await cluster.stop()
    }
}
