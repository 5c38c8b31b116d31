import Foundation

/// Runs the built `runner` executable, as a user would, and captures what it prints.
package struct RunnerProcess {
    package struct Result {
        package let status: Int32
        package let stdout: String
        package let stderr: String
    }

    /// The `runner` binary next to the test bundle in the build folder.
    package static var executable: URL {
        let buildDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [buildDirectory, buildDirectory.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent("runner")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return URL(fileURLWithPath: ".build/debug/runner")
    }

    /// A `Process` for `runner` with `arguments`, started through `wrapper` when it has one.
    private static func process(_ arguments: [String], wrapper: [String]) -> Process {
        let process = Process()
        if let program = wrapper.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(wrapper.dropFirst()) + [executable.path] + arguments
        } else {
            process.executableURL = executable
            process.arguments = arguments
        }
        // As on a platform: no terminal on stdin, whatever the test runner was started from.
        process.standardInput = FileHandle.nullDevice
        return process
    }

    /// Starts `runner` without waiting for it, for tests that signal it: its output goes to
    /// `log` (both streams), or nowhere. `wrapper` starts it through another program first
    /// (`unshare --pid --fork`).
    package static func launch(_ arguments: [String], environment: [String: String], log: URL? = nil, wrapper: [String] = [])
        throws -> Process
    {
        let process = process(arguments, wrapper: wrapper)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        var handle: FileHandle?
        if let log {
            FileManager.default.createFile(atPath: log.path, contents: nil)
            handle = try FileHandle(forWritingTo: log)
        }
        process.standardOutput = handle ?? FileHandle.nullDevice
        process.standardError = handle ?? FileHandle.nullDevice
        try process.run()
        try handle?.close()
        return process
    }

    /// Runs `runner` to its end. The waiting happens on a thread of its own, never on the
    /// cooperative pool, so a slow child cannot starve the other tests.
    /// `wrapper` runs it through another program first (`faketime -f +2h`).
    /// `clearEnvironment`: `environment` alone, not merged into the test process's own.
    package static func run(
        _ arguments: [String], environment: [String: String] = [:], currentDirectory: URL? = nil,
        wrapper: [String] = [], clearEnvironment: Bool = false
    ) async throws -> Result {
        try await offPool {
            try blockingRun(
                arguments, environment: environment, currentDirectory: currentDirectory, wrapper: wrapper,
                clearEnvironment: clearEnvironment)
        }
    }

    /// Waits on the calling thread: only ever called off the cooperative pool (``run``).
    private static func blockingRun(
        _ arguments: [String], environment: [String: String], currentDirectory: URL?, wrapper: [String] = [],
        clearEnvironment: Bool = false
    ) throws -> Result {
        let process = process(arguments, wrapper: wrapper)
        var merged = clearEnvironment ? [:] : ProcessInfo.processInfo.environment
        merged.merge(environment) { $1 }
        process.environment = merged
        if let currentDirectory { process.currentDirectoryURL = currentDirectory }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes before waiting, so a chatty child cannot block on a full pipe.
        let errBox = DataBox()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errBox.data = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errBox.data, as: UTF8.self))
    }
}

/// Runs blocking work (waiting for a process, reading a pipe) on a dispatch thread and awaits it.
package func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}

/// Ends a test server (a Python child): it stops when its stdin closes; SIGKILL as well, since
/// a child spawned from a thread that blocks SIGTERM inherits the block. False when it never
/// started. Never kill(0, …): that would signal this whole process group, the test runner
/// included.
package func endServer(_ process: Process, input: Pipe) -> Bool {
    try? input.fileHandleForWriting.close()
    guard process.processIdentifier > 0 else { return false }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    return true
}

/// Ends a test server from a `deinit`, which cannot await: the killed child is reaped on a
/// queue of its own, never on a thread of the cooperative pool.
package func reapInBackground(_ process: Process, input: Pipe) {
    guard endServer(process, input: input) else { return }
    DispatchQueue.global().async { process.waitUntilExit() }
}

/// Runs `body`, then `cleanup` whether `body` returned or threw, awaiting both: the `defer`
/// an async test needs, since a `defer` cannot await and a blocking wait there would hold a
/// thread of the cooperative pool.
package func withCleanup<T>(_ body: () async throws -> T, cleanup: () async -> Void) async throws -> T {
    let result: T
    do {
        result = try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
    return result
}

/// Written by one reader thread and read only after it has finished (`group.wait()`).
private final class DataBox: @unchecked Sendable {
    package var data = Data()
}

/// A temporary folder removed when the test ends.
package final class TemporaryDirectory: Sendable {
    package let url: URL

    package init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("runner-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    package func write(_ name: String, _ text: String) throws -> URL {
        let file = url.appendingPathComponent(name)
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }
}
