extension Migration {
    /// Effect keys survive a rename: they start with a scope (the agent and its product
    /// database, or the job's `effects_scope:`), not the job's name. Which job names have had
    /// their old `job:` keys moved to their scope is recorded here: each job's first run after
    /// the upgrade moves them (only the job table knows which agent and database a name meant).
    /// And the attempts of one slot are found through (job, slot).
    package static let v0006EffectScopes = Migration(
        version: 6,
        name: "effect scopes",
        sql: """
            CREATE TABLE runner.effect_scopes (
                job         text PRIMARY KEY,
                scope       text NOT NULL,
                adopted_at  timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX runs_job_slot ON runner.runs (job, slot);
            """)
}
