import Foundation

/// Waits for `work` at most `limit`; whether it finished in time. The work is not cancelled: it
/// goes on (or is given up with the process) after a `false`.
public func finishes(within limit: Duration, _ work: @escaping @Sendable () async -> Void) async -> Bool {
    let done = FirstOf<Bool>()
    let working = Task {
        await work()
        done.settle(true)
    }
    let timer = Task {
        try? await Task.sleep(for: limit)
        done.settle(false)
    }
    let finished = await done.value
    timer.cancel()
    _ = working
    return finished
}

/// A value settled once, by whichever of several racers comes first; awaited by one waiter.
public final class FirstOf<Value: Sendable>: Sendable {
    private struct State {
        var settled: Value?
        var waiter: CheckedContinuation<Value, Never>?
    }
    private let state = Locked(State())

    public init() {}

    /// True if this call settled it (no other racer came first).
    @discardableResult
    public func settle(_ value: Value) -> Bool {
        let (won, resume): (Bool, CheckedContinuation<Value, Never>?) = state.withLock { state in
            guard state.settled == nil else { return (false, nil) }
            state.settled = value
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        resume?.resume(returning: value)
        return won
    }

    public var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                let ready: Value? = state.withLock { state in
                    if let settled = state.settled { return settled }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}
