extension Migration {
    /// `runner backfill` runs past slots under a trigger of their own, so the history tells
    /// them from what the schedule ran on time.
    package static let v0007BackfillTrigger = Migration(
        version: 7,
        name: "backfill trigger",
        sql: """
            ALTER TABLE runner.runs DROP CONSTRAINT runs_trigger_check;
            ALTER TABLE runner.runs ADD CONSTRAINT runs_trigger_check
                CHECK (trigger IN ('schedule', 'once', 'manual', 'retry', 'catchup', 'backfill'));
            """)
}
