extension Migration {
    /// What started a run's chain of attempts is a column, `origin`: `schedule` (a slot, whoever
    /// claimed it: the scheduler, `runner once`, a catch-up, a backfill), `manual` (`runner once
    /// --force`) or `dry_run`. A retry keeps its first attempt's origin. Before this version it
    /// was read from the key's prefix (`manual:<uuid>`, `dry-run:<uuid>`, and their retries'
    /// `#n`); this converts the rows written so, the last time a prefix is read.
    ///
    /// The column is added with a constant default, which Postgres records in the catalog without
    /// rewriting the table; only the manual and dry rows are updated (one scan, under the
    /// migration's lock). The default stays: a row that does not say is a slot's.
    ///
    /// A runner of an earlier version that connected before the migration (a `runner once
    /// --force` asleep in its retry backoff) would still write `manual:<uuid>#n` without an
    /// origin, that is as a slot's run: it would hold the job and be retried by others. The
    /// second constraint refuses such a row (its claim fails and is logged) rather than let it
    /// pass for a slot. Both constraints are `NOT VALID`: they hold for every row written from
    /// now on, and the rows converted here satisfy them by construction, so no second scan.
    package static let v0013RunOrigin = Migration(
        version: 13,
        name: "run_origin",
        sql: """
            ALTER TABLE runner.runs ADD COLUMN origin text NOT NULL DEFAULT 'schedule';
            UPDATE runner.runs SET origin = CASE WHEN left(slot_key, 8) = 'dry-run:' THEN 'dry_run' ELSE 'manual' END
            WHERE left(slot_key, 7) = 'manual:' OR left(slot_key, 8) = 'dry-run:';
            ALTER TABLE runner.runs
                ADD CONSTRAINT runs_origin_check CHECK (origin IN ('schedule', 'manual', 'dry_run')) NOT VALID,
                ADD CONSTRAINT runs_origin_of_unscheduled_keys
                    CHECK (origin <> 'schedule' OR (left(slot_key, 7) <> 'manual:' AND left(slot_key, 8) <> 'dry-run:'))
                    NOT VALID;
            """
    )
}
