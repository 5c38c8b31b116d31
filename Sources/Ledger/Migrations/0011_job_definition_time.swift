extension Migration {
    /// A schedule owes nothing from before it existed: `runner.jobs.defined_at` is when a job's
    /// schedule or time zone took its present form (set when it changes, not when its next slot
    /// does), so editing `0 3 * * *` to `0 2 * * *` at 02:30 counts no 02:00 slot as missed.
    package static let v0011JobDefinitionTime = Migration(
        version: 11,
        name: "job definition time",
        sql: """
            -- Jobs known before this version owe their slots since their first run, as before.
            ALTER TABLE runner.jobs ADD COLUMN defined_at timestamptz;
            UPDATE runner.jobs SET defined_at = '-infinity';
            ALTER TABLE runner.jobs ALTER COLUMN defined_at SET DEFAULT now(), ALTER COLUMN defined_at SET NOT NULL;
            """)
}
