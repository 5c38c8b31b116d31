import Foundation
import Ledger

/// A claim of `job`'s `slot` (keyed by its instant unless `key` says otherwise) by a test.
package func claimRequest(_ job: String, slot: Date, key: String? = nil, skip: Bool = true) -> Ledger.ClaimRequest {
    Ledger.ClaimRequest(
        job: job, slot: slot, slotKey: key ?? Ledger.slotKey(for: slot), trigger: .once, claimedBy: "test:1",
        lease: .seconds(30), skipIfRunning: skip)
}
