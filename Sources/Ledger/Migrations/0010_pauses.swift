extension Migration {
    /// `runner pause` and `runner resume`: each pause a row, kept after it ends, so the slots a
    /// paused job did not run are never counted as missed, however late someone looks.
    package static let v0010Pauses = Migration(
        version: 10,
        name: "pauses",
        sql: """
            CREATE TABLE runner.pauses (
                id          bigserial PRIMARY KEY,
                job         text NOT NULL,
                paused_at   timestamptz NOT NULL DEFAULT now(),
                until       timestamptz,
                reason      text,
                paused_by   text NOT NULL,
                resumed_at  timestamptz,
                resumed_by  text
            );
            -- At most one open pause per job.
            CREATE UNIQUE INDEX pauses_open ON runner.pauses (job) WHERE resumed_at IS NULL;
            CREATE INDEX pauses_job ON runner.pauses (job, paused_at);
            """)
}
