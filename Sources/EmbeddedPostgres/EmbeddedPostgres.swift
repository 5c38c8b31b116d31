import CLibPQ
import Foundation
import PostgresClient
import Processes
import RunnerSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A private PostgreSQL cluster the runner starts itself from the system's PostgreSQL binaries:
/// the default when no `DATABASE_URL` is set, and the server of the test suite.
///
/// The cluster lives under `home` (`.runner/` or `RUNNER_HOME`) and is private to the user who
/// made it: it listens on a Unix socket with mode 0700 in a folder of mode 0700 (no other local
/// user can reach it), and every connection needs the role `runner`'s password, a random one kept
/// in a libpq password file of mode 0600 beside the data (`passfile` in the connection string,
/// so the password never appears in a URL, an argv or a log). Started as root, it runs the
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
    /// Added to the server's environment when this call starts it (the tests run one server
    /// under libfaketime, to move the database's clock through a simulated hour).
    public let serverEnvironment: [String: String]

    public static let role = "runner"
    public static let database = "runner"

    /// `max_connections` of a new cluster (a test suite runs hundreds of processes at once).
    public let maxConnections: Int

    public init(
        home: URL, fast: Bool = false, tcp: Bool = false, serverTimeZone: String? = nil,
        serverEnvironment: [String: String] = [:], maxConnections: Int = 200
    ) {
        self.maxConnections = maxConnections
        self.home = home.standardizedFileURL
        self.fast = fast
        self.tcp = tcp
        self.serverTimeZone = serverTimeZone
        self.serverEnvironment = serverEnvironment
    }

    /// `RUNNER_HOME`, else `.runner` in the current folder.
    public static func defaultHome(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let home = environment["RUNNER_HOME"], !home.isEmpty { return URL(fileURLWithPath: home) }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".runner")
    }

    private var isRoot: Bool { geteuid() == 0 }

    /// Where the cluster's files are: `home/postgres`, or, when started as root and the
    /// `postgres` user cannot reach `home` (a home under /root, say), a folder in /var/tmp.
    package var clusterDirectory: URL {
        let pointer = home.appendingPathComponent("postgres-location")
        if let text = try? String(contentsOf: pointer, encoding: .utf8) {
            return URL(fileURLWithPath: text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return home.appendingPathComponent("postgres")
    }

    package var dataDirectory: URL { clusterDirectory.appendingPathComponent("data") }
    package var logFile: URL { clusterDirectory.appendingPathComponent("server.log") }

    /// The libpq password file (`*:*:*:runner:PASSWORD`, mode 0600).
    package var passwordFile: URL { clusterDirectory.appendingPathComponent("passfile") }

    /// The socket folder: `socket` beside the data, or, when that path would pass the 107-byte
    /// limit of a socket's name, a folder made fresh with an unpredictable name in /tmp, whose
    /// path `socket-location` keeps (it is checked before each start: see ``prepareSocketDirectory()``).
    package var socketDirectory: URL {
        let preferred = clusterDirectory.appendingPathComponent("socket")
        if Self.fitsPreferredSocket(preferred.path) { return preferred }
        let recorded = (try? String(contentsOf: socketLocationFile, encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return URL(fileURLWithPath: recorded.flatMap { $0.isEmpty ? nil : $0 } ?? "/nonexistent/runner-socket")
    }

    private var socketLocationFile: URL { clusterDirectory.appendingPathComponent("socket-location") }

    /// The socket's own path must fit the 107-byte limit, and pass pg_ctl's shell (it quotes
    /// `-o` options with `'`) and libpq's conninfo as it is: plain characters only.
    package static func fitsPreferredSocket(_ path: String) -> Bool {
        path.utf8.count + 20 < 100
            && path.utf8.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || "/._-+".utf8.contains(byte)
            }
    }

    /// The port in the cluster's configuration (it names the socket file too).
    package var port: Int {
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
            "postgresql:///\(database)?host=\(Self.percentEncode(socketDirectory.path))&port=\(port)&user=\(Self.role)"
                + "&passfile=\(Self.percentEncode(passwordFile.path))")
    }

    /// The same database over TCP on 127.0.0.1 (only with `tcp`).
    public func tcpConnectionString(database: String = Self.database, user: String, password: String)
        -> ConnectionString
    {
        ConnectionString("postgresql://\(user):\(Self.percentEncode(password))@127.0.0.1:\(port)/\(database)")
    }

    /// Whether the server answers on its socket (a `postmaster.pid` alone proves nothing: its
    /// process may be long gone, its number taken by another program).
    public func isRunning() async -> Bool {
        answers()
    }

    private func answers() -> Bool {
        let conninfo =
            "postgresql:///postgres?host=\(Self.percentEncode(socketDirectory.path))&port=\(port)&connect_timeout=3"
        let ping = PQping(conninfo)
        return ping == PQPING_OK || ping == PQPING_REJECT
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
            try await checkClusterFolder()
            guard !answers() else {
                if socketDirectory == clusterDirectory.appendingPathComponent("socket") {
                    try await makePrivate(socketDirectory)
                }
                try await secureOlderCluster()
                try await createDatabaseOnce()
                return false
            }
            try await clearStalePidFile()
            try await prepareSocketDirectory()
            do {
                // Given on the command line, so clusters made before these settings get them too.
                try await pgCtl(
                    [
                        "start", "-D", dataDirectory.path, "-l", logFile.path, "-w", "-t", "60", "-o",
                        "-c unix_socket_directories='\(socketDirectory.path)' -c unix_socket_permissions=0700",
                    ], environment: serverEnvironment)
            } catch {
                let log = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
                let tail = log.split(separator: "\n").suffix(5).joined(separator: "\n")
                throw Failure(description: "\(error)\nserver log (\(logFile.path)):\n\(tail)")
            }
            try await secureOlderCluster()
            try await createDatabaseOnce()
            return true
        }
    }

    public func stop() async throws {
        try await withLock {
            guard FileManager.default.fileExists(atPath: dataDirectory.path), answers() else { return }
            try await pgCtl(["stop", "-D", dataDirectory.path, "-m", "fast", "-w", "-t", "60"])
        }
    }

    private func initialise() async throws {
        let fileManager = FileManager.default
        try fileManager.createDirectory(at: home, withIntermediateDirectories: true)
        var cluster = home.appendingPathComponent("postgres")
        if isRoot, await !serverUserCanWrite(under: home) {
            // A fresh folder with an unpredictable name: nobody can have made it first.
            cluster = try Self.freshFolder("/var/tmp/runner-postgres-XXXXXXXX")
            try cluster.path.write(
                to: home.appendingPathComponent("postgres-location"), atomically: true, encoding: .utf8)
        }
        try? fileManager.removeItem(at: cluster.appendingPathComponent("data"))
        try fileManager.createDirectory(at: cluster, withIntermediateDirectories: true)
        try await makePrivate(cluster)
        let password = Self.randomPassword()
        // initdb reads the password from a file of the server user's, removed right after.
        let initialPassword = cluster.appendingPathComponent("initdb-password")
        try Self.writePrivateFile(initialPassword, password + "\n")
        try await giveToServerUser(initialPassword)
        defer { try? fileManager.removeItem(at: initialPassword) }
        try await run(
            try binary("initdb"),
            [
                "-D", dataDirectory.path, "-U", Self.role, "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256", "--pwfile=\(initialPassword.path)",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            ],
            asServerUser: true)
        try Self.writePrivateFile(passwordFile, "*:*:*:\(Self.role):\(password)\n")
        var settings = [
            "listen_addresses = '\(tcp ? "127.0.0.1" : "")'",
            "unix_socket_permissions = 0700",
            "port = \(tcp ? try Self.freePort() : 5432)",
            "max_connections = \(maxConnections)",
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

    // MARK: - Privacy

    /// Makes the socket folder: mode 0700, owned by the server's user. A folder in /tmp whose
    /// path was kept is used again only if it is still a real folder (not a link) of that user
    /// with mode 0700; otherwise, or the first time, a new one with a random name is made.
    private func prepareSocketDirectory() async throws {
        let preferred = clusterDirectory.appendingPathComponent("socket")
        if Self.fitsPreferredSocket(preferred.path) {
            try FileManager.default.createDirectory(at: preferred, withIntermediateDirectories: true)
            try await makePrivate(preferred)
            return
        }
        if Self.isPrivateFolder(socketDirectory.path, owner: try serverUserID()) { return }
        let folder = try Self.freshFolder("/tmp/runner-pg-XXXXXXXX")
        try await makePrivate(folder)
        try folder.path.write(to: socketLocationFile, atomically: true, encoding: .utf8)
    }

    /// `mkdtemp`: a new folder (mode 0700) whose name ends in random characters.
    package static func freshFolder(_ template: String) throws -> URL {
        var bytes = Array(template.utf8CString)
        guard let made = bytes.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw Failure(description: "cannot make a folder like \(template): \(String(cString: strerror(errno)))")
        }
        return URL(fileURLWithPath: String(cString: made))
    }

    /// The cluster's folder holds the password file and the socket's location: it must be a
    /// real folder of the server's user, and it is made mode 0700 (clusters from older runners
    /// had 0755). One that is a link, or another user's, is refused.
    private func checkClusterFolder() async throws {
        let path = clusterDirectory.path
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        let owner = try serverUserID()
        guard (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == owner || info.st_uid == geteuid() else {
            throw Failure(
                description: "\(path) is not a folder of this user or of the server's user; remove it and start again")
        }
        guard chmod(path, 0o700) == 0 else {
            throw Failure(description: "cannot make \(path) private: \(String(cString: strerror(errno)))")
        }
    }

    private func makePrivate(_ folder: URL) async throws {
        try await giveToServerUser(folder)
        guard chmod(folder.path, 0o700) == 0 else {
            throw Failure(description: "cannot make \(folder.path) private: \(String(cString: strerror(errno)))")
        }
    }

    /// A folder, not a link, owned by `owner`, that no one else may enter.
    package static func isPrivateFolder(_ path: String, owner: uid_t) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0 else { return false }
        return (info.st_mode & S_IFMT) == S_IFDIR && info.st_uid == owner && info.st_mode & 0o077 == 0
    }

    /// The uid the server runs as: `postgres` when started as root, else our own.
    private func serverUserID() throws -> uid_t {
        guard isRoot else { return geteuid() }
        guard let entry = getpwnam("postgres") else {
            throw Failure(
                description: "there is no postgres user to run the server as (install the postgresql package)")
        }
        return entry.pointee.pw_uid
    }

    /// A `postmaster.pid` whose server does not answer: if its process is this cluster's server
    /// (working in this data folder) it is stopped properly; any other process only happens to
    /// have that number now, so the file is stale and goes.
    private func clearStalePidFile() async throws {
        let pidFile = dataDirectory.appendingPathComponent("postmaster.pid")
        guard let text = try? String(contentsOf: pidFile, encoding: .utf8) else { return }
        let pid = text.split(separator: "\n").first.flatMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
        if let pid, pid > 0, kill(pid, 0) == 0 || errno == EPERM {
            // Alive: ours only if it works in this data folder; if that cannot be read, the
            // file stays (removing a live server's would let a second one start on its data).
            guard let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd") else {
                throw Failure(
                    description: "\(pidFile.path) names process \(pid), which is alive and may be this cluster's "
                        + "server, but its socket does not answer; stop that process or remove the file")
            }
            if URL(fileURLWithPath: cwd).resolvingSymlinksInPath().path
                == dataDirectory.resolvingSymlinksInPath().path
            {
                try await pgCtl(["stop", "-D", dataDirectory.path, "-m", "fast", "-w", "-t", "60"])
                return
            }
        }
        try FileManager.default.removeItem(at: pidFile)
    }

    /// A cluster made before it had a password (local connections were trusted): gives the role
    /// a random password, keeps it in the password file, and asks for it from now on.
    private func secureOlderCluster() async throws {
        guard !FileManager.default.fileExists(atPath: passwordFile.path) else { return }
        let password = Self.randomPassword()
        let trusted = ConnectionString(
            "postgresql:///postgres?host=\(Self.percentEncode(socketDirectory.path))&port=\(port)&user=\(Self.role)")
        let connection = try await PostgresConnection.connect(trusted)
        // Only the verifier travels (and could reach the server's log); it holds no quote.
        let verifier = try await connection.encryptedPassword(password, user: Self.role)
        try await connection.execute("ALTER ROLE \(Self.role) PASSWORD '\(verifier)'")
        await connection.close()
        let hba = dataDirectory.appendingPathComponent("pg_hba.conf")
        let rules = """
            # runner embedded cluster: every connection needs the password (see passfile beside the data)
            local   all   all                  scram-sha-256
            host    all   all   127.0.0.1/32   scram-sha-256
            host    all   all   ::1/128        scram-sha-256

            """
        try rules.write(to: hba, atomically: true, encoding: .utf8)
        try await giveToServerUser(hba)
        try await pgCtl(["reload", "-D", dataDirectory.path])
        // Last: its presence says the upgrade is done, so a failure before it is tried again.
        try Self.writePrivateFile(passwordFile, "*:*:*:\(Self.role):\(password)\n")
    }

    package static func randomPassword() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<32).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
    }

    /// Writes a file only its owner may read (created with mode 0600, never wider for a moment).
    package static func writePrivateFile(_ url: URL, _ text: String) throws {
        unlink(url.path)
        let descriptor = open(url.path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else {
            throw Failure(description: "cannot write \(url.path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        guard write(descriptor, bytes, bytes.count) == bytes.count else {
            throw Failure(description: "cannot write \(url.path): \(String(cString: strerror(errno)))")
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
    private func pgCtl(_ arguments: [String], environment: [String: String] = [:]) async throws -> String {
        try await run(try binary("pg_ctl"), arguments, asServerUser: true, environment: environment)
    }

    /// Finds a PostgreSQL program: `RUNNER_PG_BIN`, the newest /usr/lib/postgresql/*/bin, then PATH.
    package func binary(_ name: String) throws -> String {
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
    private func run(
        _ program: String, _ arguments: [String], asServerUser: Bool, environment extra: [String: String] = [:]
    ) async throws -> String {
        let argv =
            asServerUser && isRoot
            ? ["/usr/sbin/runuser", "-u", "postgres", "--", program] + arguments : [program] + arguments
        // Keep the caller's PG* settings away from the private cluster's tools.
        let environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PG") }
            .merging(extra) { $1 }
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
    public static func freePort() throws -> Int {
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

    package static func shortHash(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    package static func percentEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
