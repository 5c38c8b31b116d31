import Foundation

/// One heavy real-process scenario at a time (several replicas, thousands of jobs, a flood of
/// clients): run side by side on a 2-core machine they starve each other and the rest of the
/// suite, and every timing bound of the suite becomes a coin toss. Scenarios of a few processes
/// that mostly wait (a lease running out: the orphan tests) run beside anything.
package actor HeavyScenario {
    package static let shared = HeavyScenario()
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    private func acquire() async {
        guard busy else {
            busy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
    }

    /// Runs `body` when no other heavy scenario runs.
    package static func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await shared.acquire()
        do {
            let value = try await body()
            await shared.release()
            return value
        } catch {
            await shared.release()
            throw error
        }
    }
}
