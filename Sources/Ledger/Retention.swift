import Foundation
import JobTable
import PostgresClient

extension Ledger {
    /// How many rows one retention pass deleted.
    public struct Pruned: Sendable, Equatable, CustomStringConvertible {
        public var runs = 0
        public var metrics = 0
        public var effects = 0

        public init(runs: Int = 0, metrics: Int = 0, effects: Int = 0) {
            (self.runs, self.metrics, self.effects) = (runs, metrics, effects)
        }

        public var description: String { "\(runs) runs, \(metrics) metrics, \(effects) effects" }
    }

    /// Deletes, in batches of `batch` rows (each a short statement, so claims on the same
    /// connection wait little), the runs, metrics and done effects older than `retention`.
    /// A running run is never deleted, nor any of a job's last ``Retention/keptFailures``
    /// failures; pending effects are kept whatever their age.
    ///
    /// At most once per `interval` among all replicas: the pass is claimed by an UPDATE of
    /// `runner.maintenance` (one winner however many race), and an advisory lock keeps a pass
    /// slower than the interval from overlapping the next. nil: another replica's turn.
    public func prune(_ retention: Retention, every interval: Duration = .seconds(3600), batch: Int = 1000)
        async throws -> Pruned?
    {
        // Each namespace's pass is its own: a namespace new to the ledger gets its row first.
        try await connection.query(
            """
            INSERT INTO runner.maintenance (namespace, task, last_run_at) VALUES ($1, 'retention', '-infinity')
            ON CONFLICT (namespace, task) DO NOTHING
            """, [ns])
        let claimed = try await connection.query(
            """
            UPDATE runner.maintenance SET last_run_at = now()
            WHERE namespace = $2 AND task = 'retention' AND last_run_at <= now() - $1::interval
            RETURNING task
            """, [.interval(interval), ns])
        guard claimed.count > 0 else { return nil }
        let lock = "SELECT pg_advisory_unlock(hashtext('runner.retention'), hashtext($1))"
        let locked = try await connection.query(
            "SELECT pg_try_advisory_lock(hashtext('runner.retention'), hashtext($1)) AS locked", [ns]
        ).first?.bool("locked")
        guard locked == true else { return nil }
        do {
            let pruned = try await pruneBatches(retention, batch: batch)
            try await connection.query(lock, [ns])
            try await connection.query(
                "UPDATE runner.maintenance SET last_result = $1::jsonb WHERE namespace = $2 AND task = 'retention'",
                [
                    PostgresValue(
                        #"{"runs": \#(pruned.runs), "metrics": \#(pruned.metrics), "effects": \#(pruned.effects)}"#),
                    ns,
                ])
            return pruned
        } catch {
            _ = try? await connection.query(lock, [ns])
            throw error
        }
    }

    private func pruneBatches(_ retention: Retention, batch: Int) async throws -> Pruned {
        var pruned = Pruned()
        pruned.runs = try await repeatedly {
            try await connection.query(
                """
                WITH kept AS (
                    SELECT id FROM (
                        SELECT id, row_number() OVER (PARTITION BY job ORDER BY started_at DESC, id DESC) AS n
                        FROM runner.runs
                        WHERE namespace = $4 AND status IN ('failed', 'timed_out', 'abandoned', 'interrupted')
                    ) failures
                    WHERE n <= $3::integer
                ),
                doomed AS (
                    SELECT id FROM runner.runs
                    WHERE namespace = $4 AND started_at < now() - $1::interval AND status <> 'running'
                      AND id NOT IN (SELECT id FROM kept)
                    ORDER BY started_at LIMIT $2::integer
                )
                DELETE FROM runner.runs WHERE id IN (SELECT id FROM doomed) RETURNING id
                """, [.interval(retention.runs), .int(batch), .int(Retention.keptFailures), ns]
            ).count
        }
        pruned.metrics = try await repeatedly {
            try await connection.query(
                """
                DELETE FROM runner.metrics WHERE id IN (
                    SELECT id FROM runner.metrics
                    WHERE namespace = $3 AND recorded_at < now() - $1::interval LIMIT $2::integer)
                RETURNING id
                """, [.interval(retention.metrics), .int(batch), ns]
            ).count
        }
        pruned.effects = try await repeatedly {
            try await connection.query(
                """
                DELETE FROM runner.effects WHERE id IN (
                    SELECT id FROM runner.effects
                    WHERE namespace = $3 AND done_at IS NOT NULL AND status <> 'pending'
                      AND done_at < now() - $1::interval
                    LIMIT $2::integer)
                RETURNING id
                """, [.interval(retention.effects), .int(batch), ns]
            ).count
        }
        return pruned

        /// Runs one batch after another until one deletes nothing; the total deleted.
        func repeatedly(_ batchOnce: () async throws -> Int) async throws -> Int {
            var total = 0
            while true {
                try Task.checkCancellation()
                let deleted = try await batchOnce()
                total += deleted
                if deleted == 0 { return total }
            }
        }
    }
}
