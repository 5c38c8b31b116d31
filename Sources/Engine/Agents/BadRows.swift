import Ledger
import Logging
import RunnerSupport

/// Rows of a product's table that a run cannot use (an infinite timestamp, a NaN amount, a
/// value that does not decode): each is skipped, counted in the outcome (`bad_rows`, with the
/// first ids in `bad_row_ids`) and logged once, while the run goes on with every other row.
package struct BadRows: Sendable {
    package init() {}

    private(set) var count = 0
    private(set) var samples: [(id: String, reason: String)] = []
    package static let sampleLimit = 20

    package mutating func add(id: String, reason: String, logger: Logger) {
        count += 1
        guard samples.count < Self.sampleLimit else { return }
        let shown = displayEscaped(id)
        samples.append((shown, reason))
        logger.warning("row skipped", metadata: ["row_id": "\(shown)", "reason": "\(reason)"])
    }

    /// Adds the `bad_rows` count and the outcome's `bad_row_ids`, when there are any.
    package func report(into report: inout ReportBuilder) {
        guard count > 0 else { return }
        report.count("bad_rows", count)
        report.note("bad_row_ids", .array(samples.map { .string($0.id) }))
    }
}
