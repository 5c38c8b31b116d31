import CSystemShims
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a command job's argv without a shell, in its own process group, so that a timeout
/// or shutdown can stop the command and everything it started.
public struct CommandProcess: Sendable {
    public struct Result: Sendable, Equatable {
        /// The exit code, when the process exited by itself.
        public var exitCode: Int32?
        /// The signal that ended it, when it was killed.
        public var signal: Int32?
        public var stdoutTail: String
        public var stderrTail: String
        public var stdoutBytes: Int
        public var stderrBytes: Int
        /// True when the runner stopped it (timeout or cancellation).
        public var stopped: Bool
    }

    public struct SpawnError: Error, CustomStringConvertible, Sendable {
        public let description: String
        /// The cause alone (the system's error), naming no argument.
        public var reason: String

        init(description: String, reason: String? = nil) {
            self.description = description
            self.reason = reason ?? description
        }
    }

    public static let tailBytes = 4096

    public let argv: [String]
    public let environment: [String: String]
    /// How long a stopped command gets between SIGTERM and SIGKILL.
    public let killGrace: Duration

    public init(argv: [String], environment: [String: String], killGrace: Duration = .seconds(5)) {
        self.argv = argv
        self.environment = environment
        self.killGrace = killGrace
    }

    /// Runs to completion. Cancelling the calling task stops the process group: SIGTERM, then
    /// SIGKILL after `killGrace`.
    public func run() async throws -> Result {
        let child = try spawn()
        let exit = ExitWaiter(pid: child.pid)
        let status: Int32 = await withTaskCancellationHandler {
            await exit.wait()
        } onCancel: {
            Self.stop(group: child.pid, grace: killGrace, exit: exit)
        }
        // The leader is gone; whatever it left in its group goes too, so the pipes close.
        let stragglersDone = child.output.waitForEnd(timeout: 2)
        if !stragglersDone {
            kill(-child.pid, SIGKILL)
        }
        let (stdout, stderr) = child.output.finish()
        let exited = status & 0x7f == 0
        return Result(
            exitCode: exited ? (status >> 8) & 0xff : nil, signal: exited ? nil : status & 0x7f,
            stdoutTail: String(decoding: stdout.tail, as: UTF8.self),
            stderrTail: String(decoding: stderr.tail, as: UTF8.self),
            stdoutBytes: stdout.total, stderrBytes: stderr.total, stopped: Task.isCancelled)
    }

    private static func stop(group pid: pid_t, grace: Duration, exit: ExitWaiter) {
        kill(-pid, SIGTERM)
        Thread.detachNewThread {
            let deadline = Date().addingTimeInterval(grace.timeInterval)
            while Date() < deadline && !exit.hasExited { usleep(20_000) }
            if !exit.hasExited { kill(-pid, SIGKILL) }
        }
    }

    private struct Child {
        let pid: pid_t
        let output: OutputCollector
    }

    private func spawn() throws -> Child {
        guard let program = argv.first else { throw SpawnError(description: "the command is empty") }
        var stdoutPipe: [Int32] = [0, 0]
        var stderrPipe: [Int32] = [0, 0]
        guard runner_pipe_cloexec(&stdoutPipe) == 0, runner_pipe_cloexec(&stderrPipe) == 0 else {
            throw SpawnError(description: "cannot create pipes: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        // Nothing else of ours leaks into the command (or into a server it starts): a lock
        // file or a parent's pipe held open by a daemon would never be released.
        runner_spawn_add_closefrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A group of its own (pgid = pid), default signal handling and an empty mask.
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, program, &actions, &attributes, cArguments, cEnvironment)
        close(stdoutPipe[1])
        close(stderrPipe[1])
        guard result == 0 else {
            close(stdoutPipe[0])
            close(stderrPipe[0])
            throw SpawnError(
                description: "cannot start \"\(program)\": \(String(cString: strerror(result)))",
                reason: String(cString: strerror(result)))
        }
        return Child(pid: pid, output: OutputCollector(stdout: stdoutPipe[0], stderr: stderrPipe[0]))
    }
}

/// Waits for a child on a thread of its own (waitpid blocks).
private final class ExitWaiter: @unchecked Sendable {
    // `status` and `exited` are written once under `lock`, before `hasExited` turns true.
    private let lock = NSLock()
    private var status: Int32 = 0
    private var exited = false
    private var continuations: [CheckedContinuation<Int32, Never>] = []

    init(pid: pid_t) {
        Thread.detachNewThread { [self] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            lock.lock()
            self.status = status
            exited = true
            let waiting = continuations
            continuations = []
            lock.unlock()
            waiting.forEach { $0.resume(returning: status) }
        }
    }

    var hasExited: Bool {
        lock.lock()
        defer { lock.unlock() }
        return exited
    }

    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            lock.lock()
            if exited {
                let status = self.status
                lock.unlock()
                continuation.resume(returning: status)
            } else {
                continuations.append(continuation)
                lock.unlock()
            }
        }
    }
}

/// Drains a child's stdout and stderr on two threads, keeping the byte counts and the last 4 KiB.
private final class OutputCollector: @unchecked Sendable {
    struct Stream {
        var tail: [UInt8] = []
        var total = 0
    }

    // Each reader thread stores its stream once, under `lock`; `finish` reads after both are done.
    private let lock = NSLock()
    private var streams = [Stream(), Stream()]
    private let done = DispatchGroup()

    init(stdout: Int32, stderr: Int32) {
        for (index, descriptor) in [stdout, stderr].enumerated() {
            done.enter()
            Thread.detachNewThread { [self] in
                var buffer = [UInt8](repeating: 0, count: 16_384)
                var stream = Stream()
                while true {
                    let count = read(descriptor, &buffer, buffer.count)
                    if count < 0 && errno == EINTR { continue }
                    if count <= 0 { break }
                    stream.total += count
                    stream.tail.append(contentsOf: buffer[0..<count])
                    if stream.tail.count > CommandProcess.tailBytes * 2 {
                        stream.tail.removeFirst(stream.tail.count - CommandProcess.tailBytes)
                    }
                }
                close(descriptor)
                stream.tail = Array(stream.tail.suffix(CommandProcess.tailBytes))
                lock.lock()
                streams[index] = stream
                lock.unlock()
                done.leave()
            }
        }
    }

    func waitForEnd(timeout: Double) -> Bool {
        done.wait(timeout: .now() + timeout) == .success
    }

    func finish() -> (Stream, Stream) {
        done.wait()
        lock.lock()
        defer { lock.unlock() }
        return (streams[0], streams[1])
    }
}
