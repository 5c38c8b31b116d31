extension Migration {
    /// When each ledger chore last ran (retention): claimed by an UPDATE, so among any number
    /// of replicas one runs it, at most once per interval.
    package static let v0008Maintenance = Migration(
        version: 8,
        name: "maintenance claims",
        sql: """
            CREATE TABLE runner.maintenance (
                task        text PRIMARY KEY,
                last_run_at timestamptz NOT NULL,
                last_result jsonb
            );
            INSERT INTO runner.maintenance (task, last_run_at) VALUES ('retention', '1970-01-01T00:00:00Z');
            CREATE INDEX metrics_retention ON runner.metrics (recorded_at);
            CREATE INDEX effects_retention ON runner.effects (done_at) WHERE done_at IS NOT NULL;
            """)
}
