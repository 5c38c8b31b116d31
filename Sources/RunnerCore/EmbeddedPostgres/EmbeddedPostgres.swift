import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A private PostgreSQL cluster the runner starts itself from the system's PostgreSQL binaries:
/// the default when no `DATABASE_URL` is set, and the server of the test suite.
///
/// The cluster lives under `home` (`.runner/` or `RUNNER_HOME`), listens on a Unix socket in its
/// own folder, and trusts local connections as the role `runner`. Started as root, it runs the
/// server as the `postgres` system user, which initdb requires.
public struct EmbeddedPostgres: Sendable {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public let home: URL
    /// Test clusters trade durability for speed (fsync off); the default cluster keeps it.
    public let fast: Bool
    /// Also listen on 127.0.0.1 with password authentication (the tests use it).
    public let tcp: Bool
    /// The server's own TimeZone setting; the runner sets UTC per session regardless.
    public let serverTimeZone: String?

    public static let role = "runner"
    public static let database = "runner"

    public init(home: URL, fast: Bool = false, tcp: Bool = false, serverTimeZone: String? = nil) {
        self.home = home.standardizedFileURL
        self.fast = fast
        self.tcp = tcp
        self.serverTimeZone = serverTimeZone
    }

    /// `RUNNER_HOME`, else `.runner` in the current folder.
    public static func defaultHome(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let home = environment["RUNNER_HOME"], !home.isEmpty { return URL(fileURLWithPath: home) }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".runner")
    }

    private var isRoot: Bool { geteuid() == 0 }

    /// Where the cluster's files are: `home/postgres`, or, when started as root and the
    /// `postgres` user cannot reach `home` (a home under /root, say), a folder in /var/tmp.
    var clusterDirectory: URL {
        let pointer = home.appendingPathComponent("postgres-location")
        if let text = try? String(contentsOf: pointer, encoding: .utf8) {
            return URL(fileURLWithPath: text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return home.appendingPathComponent("postgres")
    }

    var dataDirectory: URL { clusterDirectory.appendingPathComponent("data") }
    var logFile: URL { clusterDirectory.appendingPathComponent("server.log") }

    /// The socket folder; a short one in /tmp when the path would exceed the 107-byte socket limit.
    var socketDirectory: URL {
        let preferred = clusterDirectory.appendingPathComponent("socket")
        if preferred.path.utf8.count + 20 < 100 { return preferred }
        return URL(fileURLWithPath: "/tmp/runner-pg-\(Self.shortHash(preferred.path))")
    }

    /// The port in the cluster's configuration (it names the socket file too).
    var port: Int {
        let conf =
            (try? String(contentsOf: dataDirectory.appendingPathComponent("postgresql.conf"), encoding: .utf8)) ?? ""
        for line in conf.split(separator: "\n").reversed() where line.hasPrefix("port = ") {
            return Int(line.dropFirst("port = ".count)) ?? 5432
        }
        return 5432
    }

    /// A connection string for a database of this cluster, over its Unix socket.
    public func connectionString(database: String = Self.database) -> ConnectionString {
        ConnectionString(
            "postgresql:///\(database)?host=\(Self.percentEncode(socketDirectory.path))&port=\(port)&user=\(Self.role)")
    }

    /// The same database over TCP on 127.0.0.1 (only with `tcp`).
    public func tcpConnectionString(database: String = Self.database, user: String, password: String)
        -> ConnectionString
    {
        ConnectionString("postgresql://\(user):\(Self.percentEncode(password))@127.0.0.1:\(port)/\(database)")
    }

    public func isRunning() async -> Bool {
        (try? await pgCtl(["status", "-D", dataDirectory.path])) != nil
    }

    // MARK: - Start and stop

    /// Creates the cluster if needed, starts it if stopped, and makes sure the `runner`
    /// database exists. Safe to call from several processes at once (a file lock serialises them).
    /// Returns true if this call started the server.
    @discardableResult
    public func start() async throws -> Bool {
        try await withLock {
            if !FileManager.default.fileExists(atPath: dataDirectory.appendingPathComponent("PG_VERSION").path) {
                try await initialise()
            }
            guard await !isRunning() else {
                try await createDatabaseOnce()
                return false
            }
            try FileManager.default.createDirectory(at: socketDirectory, withIntermediateDirectories: true)
            try await giveToServerUser(socketDirectory)
            do {
                try await pgCtl(["start", "-D", dataDirectory.path, "-l", logFile.path, "-w", "-t", "60"])
            } catch {
                let log = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
                let tail = log.split(separator: "\n").suffix(5).joined(separator: "\n")
                throw Failure(description: "\(error)\nserver log (\(logFile.path)):\n\(tail)")
            }
            try await createDatabaseOnce()
            return true
        }
    }

    public func stop() async throws {
        try await withLock {
            guard FileManager.default.fileExists(atPath: dataDirectory.path), await isRunning() else { return }
            try await pgCtl(["stop", "-D", dataDirectory.path, "-m", "fast", "-w", "-t", "60"])
        }
    }

    private func initialise() async throws {
        let fileManager = FileManager.default
        try fileManager.createDirectory(at: home, withIntermediateDirectories: true)
        var cluster = home.appendingPathComponent("postgres")
        if isRoot, await !serverUserCanWrite(under: home) {
            cluster = URL(fileURLWithPath: "/var/tmp/runner-postgres-\(Self.shortHash(home.path))")
            try cluster.path.write(
                to: home.appendingPathComponent("postgres-location"), atomically: true, encoding: .utf8)
        }
        try? fileManager.removeItem(at: cluster.appendingPathComponent("data"))
        try fileManager.createDirectory(at: cluster, withIntermediateDirectories: true)
        try await giveToServerUser(cluster)
        try await run(
            try binary("initdb"),
            [
                "-D", dataDirectory.path, "-U", Self.role, "--auth-local=trust", "--auth-host=scram-sha-256",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            ],
            asServerUser: true)
        var settings = [
            "listen_addresses = '\(tcp ? "127.0.0.1" : "")'",
            "unix_socket_directories = '\(socketDirectory.path)'",
            "port = \(tcp ? try Self.freePort() : 5432)",
            "max_connections = 200",
        ]
        if fast { settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"] }
        if let serverTimeZone { settings.append("timezone = '\(serverTimeZone)'") }
        let conf = dataDirectory.appendingPathComponent("postgresql.conf")
        let handle = try FileHandle(forWritingTo: conf)
        try handle.seekToEnd()
        try handle.write(
            contentsOf: Data(("\n# runner embedded cluster\n" + settings.joined(separator: "\n") + "\n").utf8))
        try handle.close()
    }

    /// Creates the `runner` database unless a marker says an earlier start already did.
    private func createDatabaseOnce() async throws {
        let marker = clusterDirectory.appendingPathComponent("database-created")
        guard !FileManager.default.fileExists(atPath: marker.path) else { return }
        try await createDatabase()
        FileManager.default.createFile(atPath: marker.path, contents: Data())
    }

    private func createDatabase() async throws {
        let psql = try binary("psql")
        let admin = connectionString(database: "postgres").raw
        let exists = try await run(
            psql, [admin, "-tAc", "SELECT 1 FROM pg_database WHERE datname = '\(Self.database)'"], asServerUser: false)
        if exists.trimmingCharacters(in: .whitespacesAndNewlines) != "1" {
            try await run(psql, [admin, "-qc", "CREATE DATABASE \(Self.database)"], asServerUser: false)
        }
    }

    // MARK: - Helpers

    /// Holds an exclusive file lock on `home/embedded.lock` around `body`, polling so that a
    /// waiting process never blocks a thread of the cooperative pool.
    private func withLock<T>(_ body: () async throws -> T) async throws -> T {
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        let path = home.appendingPathComponent("embedded.lock").path
        let descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw Failure(description: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw Failure(description: "cannot lock \(path): \(String(cString: strerror(errno)))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        defer { flock(descriptor, LOCK_UN) }
        return try await body()
    }

    private func serverUserCanWrite(under folder: URL) async -> Bool {
        let probe = folder.appendingPathComponent("postgres")
        try? FileManager.default.createDirectory(at: probe, withIntermediateDirectories: true)
        try? await giveToServerUser(probe)
        return (try? await run("/usr/bin/test", ["-w", probe.path], asServerUser: true)) != nil
    }

    private func giveToServerUser(_ folder: URL) async throws {
        guard isRoot else { return }
        try await run("/bin/chown", ["-R", "postgres:postgres", folder.path], asServerUser: false)
    }

    @discardableResult
    private func pgCtl(_ arguments: [String]) async throws -> String {
        try await run(try binary("pg_ctl"), arguments, asServerUser: true)
    }

    /// Finds a PostgreSQL program: `RUNNER_PG_BIN`, the newest /usr/lib/postgresql/*/bin, then PATH.
    func binary(_ name: String) throws -> String {
        var folders: [String] = []
        if let custom = ProcessInfo.processInfo.environment["RUNNER_PG_BIN"] { folders.append(custom) }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        folders += versions.compactMap(Int.init).sorted(by: >).map { "/usr/lib/postgresql/\($0)/bin" }
        folders += (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for folder in folders {
            let path = folder + "/" + name
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw Failure(
            description: "cannot find the PostgreSQL program \(name): install the postgresql package "
                + "(apt-get install -y postgresql) or set DATABASE_URL")
    }

    /// Runs a program to completion and returns its standard output; throws with its stderr.
    @discardableResult
    private func run(_ program: String, _ arguments: [String], asServerUser: Bool) async throws -> String {
        let argv =
            asServerUser && isRoot
            ? ["/usr/sbin/runuser", "-u", "postgres", "--", program] + arguments : [program] + arguments
        // Keep the caller's PG* settings away from the private cluster's tools.
        let environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PG") }
        let result = try await CommandProcess(argv: argv, environment: environment).run()
        guard result.exitCode == 0 else {
            let message = result.stderrTail.trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure(
                description: "\((program as NSString).lastPathComponent) \(arguments.first ?? "") failed "
                    + "(exit \(result.exitCode.map(String.init) ?? "by signal")): \(message)")
        }
        return result.stdoutTail
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now (the tests' servers use it too).
    static func freePort() throws -> Int {
        let socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketDescriptor >= 0 else { throw Failure(description: "cannot open a socket to find a free port") }
        defer { close(socketDescriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { rebound in
                bind(socketDescriptor, rebound, length) == 0 && getsockname(socketDescriptor, rebound, &length) == 0
            }
        }
        guard bound else { throw Failure(description: "cannot bind 127.0.0.1 to find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func shortHash(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    static func percentEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
