import Foundation
import JobTable
import Ledger
import Logging
import PostgresClient

/// What an agent job's effect keys start with (`scope:target`): never the job's name, so a
/// renamed job finds the emails, alerts and insights it already made.
public enum EffectScope {
    /// The job's `effects_scope:`, else the agent and the product database's own name as the
    /// server reports it (`approval-nudger@zoark`): the same whichever host, port or URL
    /// reaches that database, and different for two products' databases.
    public static func of(_ job: Job, kind: AgentName, product: PostgresConnection) async throws -> String {
        if let scope = job.effectsScope { return scope }
        guard let name = try await product.query("SELECT current_database() AS name").first?.string("name") else {
            throw PostgresError(.query, "the product database did not say its name")
        }
        return "\(kind.rawValue)@\(escaped(name))"
    }

    /// The job's scope, after the keys an earlier version recorded under the job's name moved
    /// to it (``Effects/adoptLegacyKeys(job:scope:)``): what every run and preview calls first.
    public static func adopt(
        _ job: Job, kind: AgentName, product: PostgresConnection, effects: Effects, logger: Logger
    ) async throws -> String {
        let scope = try await of(job, kind: kind, product: product)
        // Keys under a job's name date from before namespaces: only the default namespace has any.
        guard effects.namespace == JobTable.defaultNamespace else { return scope }
        let moved = try await effects.adoptLegacyKeys(job: job.name, scope: scope)
        if moved > 0 {
            logger.notice(
                "effect keys moved from the job's name to its scope",
                metadata: ["job": "\(job.name)", "scope": "\(scope)", "moved": "\(moved)"])
        }
        return scope
    }

    /// `%` and `:` percent-encoded, so no scope is a prefix of another's keys.
    package static func escaped(_ name: String) -> String {
        name.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: ":", with: "%3A")
    }
}

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
