extension Migration {
    /// What started a run's chain of attempts is a column, `origin`: `schedule` (a slot, whoever
    /// claimed it: the scheduler, `runner once`, a catch-up, a backfill), `manual` (`runner once
    /// --force`) or `dry_run`. A retry keeps its first attempt's origin. Before this version it
    /// was read from the key's prefix (`manual:<uuid>`, `dry-run:<uuid>`, and their retries'
    /// `#n`); this converts the rows written so, the last time a prefix is read.
    ///
    /// The column is added with a constant default, which Postgres records in the catalog without
    /// rewriting the table; only the manual and dry rows are updated. The default stays: a row
    /// that does not say is a slot's.
    package static let v0013RunOrigin = Migration(
        version: 13,
        name: "run_origin",
        sql: """
            ALTER TABLE runner.runs ADD COLUMN origin text NOT NULL DEFAULT 'schedule'
                CONSTRAINT runs_origin_check CHECK (origin IN ('schedule', 'manual', 'dry_run'));
            UPDATE runner.runs SET origin = CASE WHEN left(slot_key, 8) = 'dry-run:' THEN 'dry_run' ELSE 'manual' END
            WHERE left(slot_key, 7) = 'manual:' OR left(slot_key, 8) = 'dry-run:';
            """
    )
}
