import CSystemShims
import Foundation
import Redaction
import RunnerSupport

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
        /// Descendants that left the process group (setsid, a double fork) and outlived the
        /// command, killed after it ended.
        public var escapedKilled = 0
        /// The output was still held open when the runner stopped reading it.
        public var outputAbandoned = false
    }

    public struct SpawnError: Error, CustomStringConvertible, Sendable {
        public let description: String
        /// The cause alone (the system's error), naming no argument.
        public var reason: String

        package init(description: String, reason: String? = nil) {
            self.description = description
            self.reason = reason ?? description
        }
    }

    public static let tailBytes = 4096
    /// Read beyond the tail so secrets are masked on whole text before the cut: a secret (in any
    /// of its forms) up to this long that crosses the cut is still seen whole.
    package static let tailMargin = 4096

    /// The stored tail of `bytes` (at most ``tailBytes`` + ``tailMargin`` of output): secrets
    /// masked on the whole of it first, then the last ``tailBytes`` kept, at a character boundary.
    package static func storedTail(_ bytes: [UInt8], redactor: Redactor = .process) -> String {
        let masked = redactor(String(decoding: bytes, as: UTF8.self))
        guard masked.utf8.count > tailBytes else { return masked }
        var start = masked.utf8.index(masked.utf8.endIndex, offsetBy: -tailBytes)
        while start < masked.utf8.endIndex, start.samePosition(in: masked.unicodeScalars) == nil {
            start = masked.utf8.index(after: start)
        }
        return String(masked.unicodeScalars[start...])
    }

    public let argv: [String]
    public let environment: [String: String]
    /// How long a stopped command gets between SIGTERM and SIGKILL.
    public let killGrace: Duration

    /// Whether descendants that escape the process group are found (by a token in their
    /// environment) and killed once the command has ended. Off for the runner's own helpers
    /// (pg_ctl starts a server that must outlive it).
    public let killsEscapedDescendants: Bool
    /// Whether the command's process group dies with the runner: it runs under a supervisor
    /// (the runner's own binary, see supervisor.c) that kills the group when the runner is gone,
    /// or, with `frozenLimit`, when the runner has not been seen alive for that long (stopped
    /// with SIGSTOP). Off for the runner's own helpers (pg_ctl's server outlives it).
    public let diesWithRunner: Bool
    public let frozenLimit: Duration?
    private let token = UUID().uuidString

    public init(
        argv: [String], environment: [String: String], killGrace: Duration = .seconds(5),
        killsEscapedDescendants: Bool = false, diesWithRunner: Bool = false, frozenLimit: Duration? = nil
    ) {
        self.argv = argv
        self.environment = environment
        self.killGrace = killGrace
        self.killsEscapedDescendants = killsEscapedDescendants
        self.diesWithRunner = diesWithRunner
        self.frozenLimit = frozenLimit
    }

    package static let tokenVariable = "RUNNER_COMMAND_TOKEN"

    /// The soft open-file limit commands get (0: this process's): the limit this process
    /// started with, when it raised its own for the status server.
    package static let commandFileLimit = Locked(0)

    /// Orphans of our commands come back to us (not init), so they can be reaped once killed.
    private static let subreaper: Void = { _ = runner_become_subreaper() }()

    /// Runs to completion. Cancelling the calling task stops the process group: SIGTERM, then
    /// SIGKILL after `killGrace`.
    public func run() async throws -> Result {
        if killsEscapedDescendants { _ = Self.subreaper }
        // Off the cooperative pool: a supervised start waits for the supervisor and the
        // command's exec, and with two cores a burst of starts would stall the scheduler.
        let child: Child = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Swift.Result<Child, any Error> { try spawn() })
            }
        }
        let exit = ExitWaiter(pid: child.pid)
        let status: Int32 = await withTaskCancellationHandler {
            await exit.wait()
        } onCancel: {
            Self.stop(group: child.pid, grace: killGrace, exit: exit)
        }
        if child.lifeline >= 0 { Glibc.close(child.lifeline) }
        // The leader is gone; whatever it left in its group goes too, so the pipes close.
        var escaped = 0
        var abandoned = false
        if await !child.output.waitForEnd(timeout: 1) {
            kill(-child.pid, SIGKILL)
            if killsEscapedDescendants { escaped = await Self.killDescendantsOffPool(token: token) }
            // Something outside the group (and not found) still holds the output: stop reading.
            abandoned = await !child.output.waitForEnd(timeout: 1)
        } else if killsEscapedDescendants {
            // A daemon that let go of the output (stdio on /dev/null) outlives the command too.
            escaped = await Self.killDescendantsOffPool(token: token)
        }
        // What the command left behind and has exited since is ours to reap (as subreaper or PID 1).
        ChildProcesses.shared.reapOrphans()
        let (stdout, stderr) = child.output.snapshot()
        let exited = status & 0x7f == 0
        return Result(
            exitCode: exited ? (status >> 8) & 0xff : nil, signal: exited ? nil : status & 0x7f,
            stdoutTail: Self.storedTail(stdout.tail),
            stderrTail: Self.storedTail(stderr.tail),
            stdoutBytes: stdout.total, stderrBytes: stderr.total, stopped: Task.isCancelled, escapedKilled: escaped,
            outputAbandoned: abandoned)
    }

    /// ``killDescendants(token:)`` on a dispatch thread: it reads /proc and waits to reap.
    package static func killDescendantsOffPool(token: String) async -> Int {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: killDescendants(token: token)) }
        }
    }

    /// Kills every process whose environment carries `token` (descendants of one command,
    /// wherever they moved), reaping those that were re-parented to us; returns how many.
    package static func killDescendants(token: String) -> Int {
        let marker = Array("\(tokenVariable)=\(token)".utf8)
        var killed: [pid_t] = []
        let me = getpid()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(name), pid != me,
                let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ")
            else { continue }
            let found = environ.split(separator: 0).contains { $0.elementsEqual(marker) }
            if found, kill(pid, SIGKILL) == 0 { killed.append(pid) }
        }
        for pid in killed {
            for _ in 0..<50 where waitpid(pid, nil, WNOHANG) == 0 { usleep(10_000) }
        }
        return killed.count
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
        package let pid: pid_t
        package let output: OutputCollector
        /// The write end of the supervisor's lifeline: closed once the supervisor is reaped
        /// (or by the kernel when the runner dies, which the supervisor sees).
        package let lifeline: Int32
    }

    private func spawn() throws -> Child {
        guard let program = argv.first else { throw SpawnError(description: "the command is empty") }
        var stdoutPipe: [Int32] = [0, 0]
        var stderrPipe: [Int32] = [0, 0]
        guard runner_pipe_cloexec(&stdoutPipe) == 0 else { throw Self.pipeError() }
        guard runner_pipe_cloexec(&stderrPipe) == 0 else {
            Self.close(stdoutPipe)
            throw Self.pipeError()
        }
        // The supervisor's pipes: the runner's end of life (only the runner holds its write end),
        // and the command's exec failure.
        var lifePipe: [Int32] = [-1, -1]
        var execPipe: [Int32] = [-1, -1]
        if diesWithRunner {
            guard runner_pipe_cloexec(&lifePipe) == 0 else {
                Self.close(stdoutPipe + stderrPipe)
                throw Self.pipeError()
            }
            guard runner_pipe_cloexec(&execPipe) == 0 else {
                Self.close(stdoutPipe + stderrPipe + lifePipe)
                throw Self.pipeError()
            }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // Moved above the numbers they go to, so no dup2 overwrites a descriptor still to be moved.
        let moved = ([stdoutPipe[1], stderrPipe[1]] + (diesWithRunner ? [lifePipe[0], execPipe[1]] : []))
            .map { runner_dup_above($0, 10) }
        let liveness = diesWithRunner && frozenLimit != nil ? Liveness.descriptor : -1
        guard !moved.contains(-1) else {
            Self.close(stdoutPipe + stderrPipe + lifePipe + execPipe + moved)
            throw Self.pipeError()
        }
        for (target, descriptor) in zip(Int32(1)..., moved) {
            posix_spawn_file_actions_adddup2(&actions, descriptor, target)
        }
        if liveness >= 0 { posix_spawn_file_actions_adddup2(&actions, liveness, 5) }
        // Nothing else of ours leaks into the command (or into a server it starts): a lock
        // file or a parent's pipe held open by a daemon would never be released.
        runner_spawn_add_closefrom(&actions, liveness >= 0 ? 6 : diesWithRunner ? 5 : 3)

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

        let limitMs = liveness >= 0 ? max(1, Int64((frozenLimit ?? .zero).timeInterval * 1000)) : 0
        let spawned =
            diesWithRunner
            ? ["runner-supervisor", RUNNER_SUPERVISOR_FLAG, String(limitMs), String(Self.commandFileLimit.withLock { $0 })] + argv
            : argv
        let cArguments = spawned.map { strdup($0) } + [nil]
        var environment = self.environment
        if killsEscapedDescendants { environment[Self.tokenVariable] = token }
        let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        let (result, pid) = ChildProcesses.shared.spawn {
            var pid: pid_t = 0
            let result =
                diesWithRunner
                ? posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, cArguments, cEnvironment)
                : posix_spawnp(&pid, program, &actions, &attributes, cArguments, cEnvironment)
            return (result, pid)
        }
        // Every write end of ours closed before the exec pipe is read: its end of file says the
        // command was started.
        Self.close([stdoutPipe[1], stderrPipe[1], lifePipe[0], execPipe[1]] + moved)
        var failure = result
        if result == 0, diesWithRunner {
            // The supervisor reports the command's exec failure (an errno), or closes it on exec.
            var error: Int32 = 0
            var got = 0
            while true {
                got = withUnsafeMutableBytes(of: &error) { read(execPipe[0], $0.baseAddress, 4) }
                if got < 0 && errno == EINTR { continue }
                break
            }
            if got == 4 { failure = error }
        }
        Self.close([execPipe[0]])
        guard failure == 0 else {
            Self.close([stdoutPipe[0], stderrPipe[0], lifePipe[1]])
            if result == 0 {
                // Reaped here: its exit status says no more than the errno did.
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                ChildProcesses.shared.reaped(pid)
            }
            throw SpawnError(
                description: "cannot start \"\(program)\": \(String(cString: strerror(failure)))",
                reason: String(cString: strerror(failure)))
        }
        return Child(
            pid: pid, output: OutputCollector(stdout: stdoutPipe[0], stderr: stderrPipe[0]),
            lifeline: diesWithRunner ? lifePipe[1] : -1)
    }

    private static func pipeError() -> SpawnError {
        SpawnError(description: "cannot create pipes: \(String(cString: strerror(errno)))")
    }

    private static func close(_ descriptors: [Int32]) {
        for descriptor in descriptors where descriptor >= 0 { Glibc.close(descriptor) }
    }
}

/// The runner's liveness page: a supervisor kills its command when the runner has not written
/// it for the frozen limit (the runner stopped by SIGSTOP, its leases running out). Written
/// every half second by a thread of its own, which a stopped process stops too.
package enum Liveness {
    package static let descriptor: Int32 = {
        let descriptor = runner_liveness_open()
        if descriptor >= 0 {
            Thread.detachNewThread {
                while true {
                    runner_liveness_beat()
                    usleep(500_000)
                }
            }
        }
        return descriptor
    }()
}

/// Waits for a child on a thread of its own (waitpid blocks).
private final class ExitWaiter: Sendable {
    private struct State {
        /// Written once, when the child is waited for.
        var status: Int32?
        var continuations: [CheckedContinuation<Int32, Never>] = []
    }
    private let state = Locked(State())

    package init(pid: pid_t) {
        Thread.detachNewThread { [state] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            ChildProcesses.shared.reaped(pid)
            let waiting = state.withLock { state in
                state.status = status
                defer { state.continuations = [] }
                return state.continuations
            }
            waiting.forEach { $0.resume(returning: status) }
        }
    }

    package var hasExited: Bool { state.withLock { $0.status != nil } }

    package func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            let exited = state.withLock { state -> Int32? in
                if state.status == nil { state.continuations.append(continuation) }
                return state.status
            }
            if let exited { continuation.resume(returning: exited) }
        }
    }
}

/// Drains a child's stdout and stderr on two threads, keeping the byte counts and the last 4 KiB.
private final class OutputCollector: Sendable {
    package struct Stream {
        package var tail: [UInt8] = []
        package var total = 0
    }

    // Each reader thread keeps its stream current here; `snapshot` reads them.
    private let streams = Locked([Stream(), Stream()])
    private let done = DispatchGroup()

    package init(stdout: Int32, stderr: Int32) {
        for (index, descriptor) in [stdout, stderr].enumerated() {
            done.enter()
            Thread.detachNewThread { [streams, done] in
                var buffer = [UInt8](repeating: 0, count: 16_384)
                var stream = Stream()
                while true {
                    let count = read(descriptor, &buffer, buffer.count)
                    if count < 0 && errno == EINTR { continue }
                    if count <= 0 { break }
                    stream.total += count
                    stream.tail.append(contentsOf: buffer[0..<count])
                    let kept = CommandProcess.tailBytes + CommandProcess.tailMargin
                    if stream.tail.count > kept * 2 { stream.tail.removeFirst(stream.tail.count - kept) }
                    // Kept current, so a reader abandoned on an open pipe still reports.
                    streams.withLock { $0[index] = stream }
                }
                close(descriptor)
                streams.withLock { $0[index] = stream }
                done.leave()
            }
        }
    }

    /// Waits, off the cooperative pool, for both streams to end; false if `timeout` passes first.
    package func waitForEnd(timeout: Double) async -> Bool {
        let done = self.done
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: done.wait(timeout: .now() + timeout) == .success)
            }
        }
    }

    /// What has been read so far (all of it, once both streams ended), tails cut to size.
    package func snapshot() -> (Stream, Stream) {
        var result = streams.withLock { ($0[0], $0[1]) }
        let kept = CommandProcess.tailBytes + CommandProcess.tailMargin
        result.0.tail = Array(result.0.tail.suffix(kept))
        result.1.tail = Array(result.1.tail.suffix(kept))
        return result
    }
}
