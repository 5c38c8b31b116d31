/// One numbered step of the `runner` schema. Applied in order, each exactly once.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String

    /// Every migration, oldest first. Append; never edit one that has shipped.
    public static let all: [Migration] = [
        .v0001CreateLedger, .v0002IndexPendingEffects, .v0003LedgerIdentity, .v0004SummaryOverRealRuns,
        .v0005RetriesAsRows,
        .v0006EffectScopes,
        .v0007BackfillTrigger,
        .v0008Maintenance,
        .v0009SummaryOfTheTable,
        .v0010Pauses,
        .v0011JobDefinitionTime,
        .v0012Namespaces,
        .v0013RunOrigin,
    ]

    public static var latestVersion: Int { all.last?.version ?? 0 }
}
