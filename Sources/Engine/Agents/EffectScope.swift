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
