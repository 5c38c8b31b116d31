/// Runs an idempotent statement again while the connection to the server is lost (a restart,
/// a failover), for up to `patience`; the connection resets itself on the next try. The waits
/// double from `firstDelay` up to `maxDelay` and are not cut short by a cancelled task: what
/// this records is what a stopping run must keep. Other errors, and a loss that outlasts the
/// patience, are thrown.
package func retryingThroughConnectionLoss<T: Sendable>(
    for patience: Duration, firstDelay: Duration, maxDelay: Duration,
    onRetry: (PostgresError) -> Void = { _ in }, _ body: () async throws -> T
) async throws -> T {
    try await retrying(
        for: patience, firstDelay: firstDelay, maxDelay: maxDelay, when: \.isConnectionLoss, onRetry: onRetry, body)
}

/// Runs an idempotent statement again while it fails with an error `when` accepts, for up to
/// `patience`, as ``retryingThroughConnectionLoss(for:firstDelay:maxDelay:onRetry:_:)`` does.
package func retrying<T: Sendable>(
    for patience: Duration, firstDelay: Duration, maxDelay: Duration, when retryable: (PostgresError) -> Bool,
    onRetry: (PostgresError) -> Void = { _ in }, _ body: () async throws -> T
) async throws -> T {
    let giveUp = ContinuousClock.now + patience
    var delay = firstDelay
    while true {
        do {
            return try await body()
        } catch let failure as PostgresError where retryable(failure) && ContinuousClock.now < giveUp {
            onRetry(failure)
            // The last try comes at the end of the patience, not a wait after it.
            let wait = min(delay, giveUp - ContinuousClock.now)
            await Task { try? await Task.sleep(for: wait) }.value
            delay = min(delay * 2, maxDelay)
        }
    }
}
