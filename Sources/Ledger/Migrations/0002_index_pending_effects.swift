extension Migration {
    /// Effects are only ever looked up by status to find the pending ones of a kind, and those
    /// are few: a partial index holds just them, where the full (status, created_at) index took
    /// an entry for every email and insight ever recorded and did not serve the lookup by kind.
    package static let v0002IndexPendingEffects = Migration(
        version: 2,
        name: "index pending effects only",
        sql: """
            DROP INDEX IF EXISTS runner.effects_status;
            CREATE INDEX effects_pending ON runner.effects (kind, id) WHERE status = 'pending';
            """)
}
