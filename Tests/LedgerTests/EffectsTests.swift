import Foundation
import Testing

@testable import Engine
@testable import RunnerSupport
@testable import PostgresClient
@testable import Ledger
@testable import Outbox
import TestSupport

@Suite("Effects ledger against a real PostgreSQL")
struct EffectsTests {
    @Test("an effect is recorded once per kind and key, however many record it at once")
    func recordOnce() async throws {
        let (url, _) = try await TestDatabase.migrated("effectsonce")
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    let effects = Effects(connection: try await PostgresConnection.connect(url))
                    return try await effects.record(
                        kind: "email", key: "task-1@2026-11-20", runID: nil, target: "ops@example.com",
                        payload: ["subject": "Stuck"]
                    ).isNew
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { $0 }.count == 1)
        let effects = Effects(connection: try await PostgresConnection.connect(url))
        let again = try await effects.record(
            kind: "email", key: "task-1@2026-11-20", runID: nil, target: nil, payload: [:])
        #expect(again.isNew == false)
        #expect(again.effect.payload == ["subject": "Stuck"])
        let other = try await effects.record(
            kind: "webhook", key: "task-1@2026-11-20", runID: nil, target: nil, payload: [:])
        #expect(other.isNew)
    }

    @Test("only one process at a time holds an effect's lease")
    func leaseIsExclusive() async throws {
        let (url, connection) = try await TestDatabase.migrated("effectslease")
        let effects = Effects(connection: connection)
        let id = try await effects.record(kind: "email", key: "k", runID: nil, target: nil, payload: [:]).effect.id
        let leases = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    try await Effects(connection: try await PostgresConnection.connect(url))
                        .lease(id, runID: nil, for: .seconds(60))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(leases.filter { $0 }.count == 1)
        try await effects.markSent(id)
        #expect(try await effects.lease(id, runID: nil, for: .seconds(60)) == false)
        #expect(try await effects.effect(kind: "email", key: "k")?.status == .sent)
    }

    @Test("pending effects: never attempted or failed transiently are retried; one that died mid-send is not")
    func pendingAfterCrash() async throws {
        let (_, connection) = try await TestDatabase.migrated("effectscrash")
        let effects = Effects(connection: connection)
        let fresh = try await effects.record(kind: "email", key: "fresh", runID: nil, target: nil, payload: [:]).effect
        let transient = try await effects.record(kind: "email", key: "transient", runID: nil, target: nil, payload: [:])
            .effect
        let crashed = try await effects.record(kind: "email", key: "crashed", runID: nil, target: nil, payload: [:])
            .effect
        let sent = try await effects.record(kind: "email", key: "sent", runID: nil, target: nil, payload: [:]).effect
        #expect(try await effects.lease(transient.id, runID: nil, for: .seconds(60)))
        try await effects.markRetryable(transient.id, error: "421 try again later")
        #expect(try await effects.lease(crashed.id, runID: nil, for: .milliseconds(1)))
        #expect(try await effects.lease(sent.id, runID: nil, for: .seconds(60)))
        try await effects.markSent(sent.id)
        try await Task.sleep(for: .milliseconds(20))

        let pending = try await effects.pending(kind: EmailDelivery.kind)
        #expect(pending.map(\.key) == ["fresh", "transient"])
        #expect(pending.last?.lastError == "421 try again later")
        let dead = try #require(try await effects.effect(kind: "email", key: "crashed"))
        #expect(dead.status == .unknown)
        #expect(dead.lastError?.hasPrefix("outcome unknown") == true)
        #expect(dead.attempts == 1)
        #expect(fresh.attempts == 0)
        #expect(try await effects.list(status: .unknown).map(\.key) == ["crashed"])
        #expect(try await effects.list(status: .failed).isEmpty)
    }
}
