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
public final class FirstOf<Value: Sendable>: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var settled: Value?
    private var waiter: CheckedContinuation<Value, Never>?

    public init() {}

    /// True if this call settled it (no other racer came first).
    @discardableResult
    public func settle(_ value: Value) -> Bool {
        let (won, resume): (Bool, CheckedContinuation<Value, Never>?) = lock.withLock {
            guard settled == nil else { return (false, nil) }
            settled = value
            defer { waiter = nil }
            return (true, waiter)
        }
        resume?.resume(returning: value)
        return won
    }

    public var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                let ready: Value? = lock.withLock {
                    if let settled { return settled }
                    waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}
