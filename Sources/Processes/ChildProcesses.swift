import CSystemShims
import Foundation
import RunnerSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The children this process started itself, and the reaping of every other child.
///
/// As PID 1 in a container, or as the subreaper of its commands, runner adopts every orphan
/// below it: a daemon a command left behind, a grandchild whose parent exited. Nobody else
/// waits for those, so each that exits would stay a zombie for the life of the process (a
/// scheduler that runs for months fills the process table). ``reapOrphans()`` waits for them;
/// it never waits for a child of our own, whose exit status its ``CommandProcess`` is reading.
public final class ChildProcesses: Sendable {
    public static let shared = ChildProcesses()

    private struct State {
        var own: Set<pid_t> = []
        var reaping = false
    }
    /// Held across a spawn and its registration, and across a reaping pass, so a pass never
    /// sees a child of ours that is not yet registered.
    private let state = Locked(State())

    /// Off by default: a process that also starts children some other way (Foundation's
    /// `Process`, as the tests do) must not have their exit statuses taken. The `runner`
    /// executable, which starts every child through ``CommandProcess``, turns it on.
    public var reapsOrphans: Bool {
        get { state.withLock { $0.reaping } }
        set { state.withLock { $0.reaping = newValue } }
    }

    /// Starts a child with `spawn` (returning the spawn's result and the pid) and registers it.
    package func spawn(_ spawn: () -> (result: Int32, pid: pid_t)) -> (result: Int32, pid: pid_t) {
        state.withLock { state in
            let spawned = spawn()
            if spawned.result == 0 { state.own.insert(spawned.pid) }
            return spawned
        }
    }

    /// A child of ours was waited for.
    package func reaped(_ pid: pid_t) {
        state.withLock { _ = $0.own.remove(pid) }
    }

    /// Waits for every exited child that this process did not start itself; returns how many.
    /// Cheap when there are none (one `waitid`); otherwise it reads `/proc` for the zombies
    /// whose parent is this process.
    @discardableResult
    public func reapOrphans() -> Int {
        state.withLock { state in
            guard state.reaping else { return 0 }
            var reaped = 0
            while true {
                let pid = runner_peek_exited_child()
                guard pid > 0 else { return reaped }
                guard state.own.contains(pid) else {
                    if waitpid(pid, nil, WNOHANG) == pid { reaped += 1 }
                    continue
                }
                // The first exited child is ours (its waiter is about to take it): look past it.
                for zombie in Self.zombieChildren() where !state.own.contains(zombie) {
                    if waitpid(zombie, nil, WNOHANG) == zombie { reaped += 1 }
                }
                return reaped
            }
        }
    }

    /// Processes in state Z whose parent is this process.
    package static func zombieChildren() -> [pid_t] {
        ProcessStat.children(of: getpid()).filter { $0.state == "Z" }.map(\.pid)
    }
}

/// The state and parent of a process, from `/proc/PID/stat`: `pid (comm) state ppid ...`, where
/// `comm` may hold spaces and parentheses, so the fields start after its last `)`.
package struct ProcessStat {
    package let state: Character
    package let parent: pid_t

    package init?(_ data: Data) {
        guard let close = data.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = String(decoding: data[data.index(after: close)...], as: UTF8.self).split(separator: " ")
        guard fields.count >= 2, let state = fields[0].first, let parent = pid_t(fields[1]) else { return nil }
        self.state = state
        self.parent = parent
    }

    /// The processes whose parent is `parent`, with their states, from `/proc/PID/stat`.
    package static func children(of parent: pid_t) -> [(pid: pid_t, state: Character)] {
        var children: [(pid: pid_t, state: Character)] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(name), let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat"),
                let stat = ProcessStat(data), stat.parent == parent
            else { continue }
            children.append((pid, stat.state))
        }
        return children
    }
}
