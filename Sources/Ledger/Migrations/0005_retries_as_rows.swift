extension Migration {
    /// Retries are rows, not memory: a failed attempt records when its successor is due, and
    /// whoever calls `runner once` (or the scheduler) after that claims it.
    package static let v0005RetriesAsRows = Migration(
        version: 5,
        name: "retries as rows",
        sql: """
            ALTER TABLE runner.runs ADD COLUMN retry_at timestamptz;
            CREATE INDEX runs_due_retries ON runner.runs (job, retry_at) WHERE retry_at IS NOT NULL;
            """)
}
