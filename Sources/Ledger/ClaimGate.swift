import Foundation
import RunnerSupport

/// Whether claims may still be made. A scheduler that is shutting down closes it; a claim
/// queued behind others on the ledger's connection checks it on that connection's thread, just
/// before its INSERT, so no slot is claimed after the signal, however many fires were queued:
/// the slots not yet claimed are left to the other replicas.
public final class ClaimGate: Sendable {
    private let open = Locked(true)

    public init() {}

    public var isOpen: Bool { open.withLock { $0 } }

    /// From now on every claim through this gate is refused (``Ledger/ClaimResult/stopped``).
    public func close() { open.withLock { $0 = false } }
}
