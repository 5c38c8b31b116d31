import PostgresClient

extension Effects {
    /// Moves the effects `job` recorded under its name (`job:target`, before keys had scopes)
    /// to `scope:target`, once per job name: the first run of each job after the upgrade does
    /// it, in one statement, and records it in `runner.effect_scopes`; every later run finds
    /// that row and writes nothing. A key whose scoped form already exists is left as it is
    /// (the scoped one decides). Returns how many keys moved.
    @discardableResult
    public func adoptLegacyKeys(job: String, scope: String) async throws -> Int {
        try await connection.query(
            """
            WITH adopted AS (
                INSERT INTO runner.effect_scopes (job, scope) VALUES ($1, $2)
                ON CONFLICT (job) DO NOTHING
                RETURNING job
            ),
            moved AS (
                UPDATE runner.effects e SET key = $2 || ':' || substr(e.key, length($1) + 2)
                FROM adopted
                -- Keys under a job's name date from before namespaces: only default's are its.
                WHERE e.namespace = 'default' AND starts_with(e.key, $1 || ':') AND $1 <> $2
                  AND NOT EXISTS (
                      SELECT 1 FROM runner.effects o
                      WHERE o.kind = e.kind AND o.key = $2 || ':' || substr(e.key, length($1) + 2))
                RETURNING e.id
            )
            SELECT count(*)::bigint AS moved FROM moved
            """, [PostgresValue(job), PostgresValue(scope)]
        ).first?.int("moved") ?? 0
    }
}
