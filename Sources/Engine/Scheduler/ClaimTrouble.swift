import Logging
import PostgresClient
import RunnerSupport

/// Claims the database keeps refusing, across every slot of a process: the first refusal of
/// an outage is logged with its error, the first claim that lands after it says how many tries
/// were refused (one line each way, however many slots retry meanwhile), and `/health` reads
/// ``inARow``.
public final class ClaimTrouble: Sendable {
    private struct State {
        package var inARow = 0
        package var total = 0
    }
    private let state = Locked(State())

    public init() {}

    /// Refused tries since the last claim that landed.
    public var inARow: Int { state.withLock { $0.inARow } }

    package func refused(job: String, slot: String, error: PostgresError, logger: Logger) {
        let first = state.withLock { state in
            state.inARow += 1
            state.total += 1
            return state.total == 1
        }
        let metadata: Logger.Metadata = ["job": "\(job)", "slot": "\(slot)", "error": "\(error)"]
        if first {
            logger.error(
                "the database refuses claims; each slot is tried again until its next slot or the end of its catchup (logged again when claims land)",
                metadata: metadata)
        } else {
            logger.debug("claim refused; trying again", metadata: metadata)
        }
    }

    package func landed(logger: Logger) {
        let refused = state.withLock { state in
            defer { state = State() }
            return state.total
        }
        if refused > 0 { logger.notice("claims land again", metadata: ["refused_tries": "\(refused)"]) }
    }
}
