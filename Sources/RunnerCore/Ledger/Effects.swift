import Foundation

/// The idempotency ledger for everything with an outside effect (email, insight, webhook).
///
/// An effect is recorded (UNIQUE kind + key) before it is performed, leased in a committed
/// statement just before each attempt, and marked after. So:
/// - the same effect is never recorded twice, however many runs find it;
/// - only one process at a time attempts it (the lease);
/// - an attempt whose process died mid-send leaves an expired lease and no outcome; it is
///   not repeated (at most once) but marked unknown with that reason, for a person to check.
public struct Effects: Sendable {
    public enum Status: String, Sendable, Codable, CaseIterable {
        /// Recorded, not yet performed (or failed transiently: tried again later).
        case pending
        case sent
        /// Nothing is configured to perform it; kept for a person to read.
        case draft
        /// Refused, or not performable (an invalid recipient): not retried.
        case failed
        /// Maybe performed: the attempt stopped after the request had left. Never retried by
        /// itself; a person checks and resends.
        case unknown
    }

    public struct Effect: Sendable, Equatable {
        public let id: Int64
        public let kind: String
        public let key: String
        public let runID: Int64?
        public let status: Status
        public let target: String?
        public let payload: JSONValue
        public let attempts: Int
        public let lastError: String?
        public let createdAt: Date
        public let doneAt: Date?

        static let columns = """
            id, kind, key, run_id, status, target, payload::text AS payload, attempts, last_error, created_at, done_at
            """

        init(row: PostgresRow) throws {
            id = try row.int64("id") ?? 0
            kind = try row.string("kind", default: "")
            key = try row.string("key", default: "")
            runID = try row.int64("run_id")
            status = Status(rawValue: try row.string("status", default: "")) ?? .pending
            target = try row.string("target")
            payload = try row.string("payload").flatMap(JSONValue.parse) ?? .null
            attempts = try row.int("attempts") ?? 0
            lastError = try row.string("last_error")
            createdAt = try row.date("created_at") ?? Date(timeIntervalSince1970: 0)
            doneAt = try row.date("done_at")
        }
    }

    public let connection: PostgresConnection

    public init(connection: PostgresConnection) {
        self.connection = connection
    }

    /// Records an effect about to be performed. Returns it and whether this call created it;
    /// an existing effect (of any status) is returned untouched.
    public func record(kind: String, key: String, runID: Int64?, target: String?, payload: JSONValue) async throws
        -> (effect: Effect, isNew: Bool)
    {
        let inserted = try await connection.query(
            """
            INSERT INTO runner.effects (kind, key, run_id, status, target, payload)
            VALUES ($1, $2, $3::bigint, 'pending', $4, $5::jsonb)
            ON CONFLICT (kind, key) DO NOTHING
            RETURNING \(Effect.columns)
            """,
            [
                PostgresValue(kind), PostgresValue(key), .int64(runID), PostgresValue(target),
                PostgresValue(payload.text),
            ])
        if let row = inserted.first { return (try Effect(row: row), true) }
        guard let existing = try await effect(kind: kind, key: key) else {
            throw PostgresError(.query, "effect \(kind)/\(key) conflicted but cannot be read")
        }
        return (existing, false)
    }

    public func effect(kind: String, key: String) async throws -> Effect? {
        try await connection.query(
            "SELECT \(Effect.columns) FROM runner.effects WHERE kind = $1 AND key = $2",
            [PostgresValue(kind), PostgresValue(key)]
        ).first.map(Effect.init(row:))
    }

    /// Takes the right to attempt a pending effect for `lease`; false if another process holds
    /// it, it is no longer pending, or an earlier attempt died mid-send (then it is marked failed:
    /// at most once). Committed before the attempt starts.
    public func lease(_ id: Int64, runID: Int64?, for lease: Duration) async throws -> Bool {
        try await failUnknownOutcomes("id = $1::bigint", [.int64(id)])
        return try await connection.query(
            """
            UPDATE runner.effects
            SET leased_until = now() + $3::interval, attempts = attempts + 1, run_id = coalesce($2::bigint, run_id),
                last_error = NULL
            WHERE id = $1::bigint AND status = 'pending' AND leased_until IS NULL
            """, [.int64(id), .int64(runID), .interval(lease)]
        ).affectedRows == 1
    }

    /// Pending effects whose lease ran out with no outcome recorded: their process died during
    /// the attempt, so whether it happened is unknown. They are not repeated.
    private func failUnknownOutcomes(_ condition: String, _ parameters: [PostgresValue]) async throws {
        try await connection.query(
            """
            UPDATE runner.effects
            SET status = 'unknown', done_at = now(), leased_until = NULL,
                last_error = 'outcome unknown: the process attempting it stopped mid-attempt; '
                             || 'not repeated, to avoid a duplicate'
            WHERE \(condition) AND status = 'pending' AND leased_until < now() AND last_error IS NULL
            """, parameters)
    }

    /// The effect was performed.
    public func markSent(_ id: Int64) async throws {
        try await finish(id, status: .sent, error: nil)
    }

    /// Nothing is configured to perform it: kept as a draft, visible in the outbox.
    public func markDraft(_ id: Int64) async throws {
        try await finish(id, status: .draft, error: nil)
    }

    /// A permanent failure: recorded, not retried.
    public func markFailed(_ id: Int64, error: String) async throws {
        try await finish(id, status: .failed, error: error)
    }

    /// Maybe performed (a timeout or reset after the request left): not retried by itself.
    public func markUnknown(_ id: Int64, error: String) async throws {
        try await finish(id, status: .unknown, error: error)
    }

    /// Records an effect that cannot be performed (an email to an address that does not parse)
    /// as failed with the reason, once per key; true if this call recorded it.
    @discardableResult
    public func recordFailed(kind: String, key: String, runID: Int64?, target: String, error: String) async throws
        -> Bool
    {
        try await connection.query(
            """
            INSERT INTO runner.effects (kind, key, run_id, status, target, payload, last_error, done_at)
            VALUES ($1, $2, $3::bigint, 'failed', $4, '{}'::jsonb, $5, now())
            ON CONFLICT (kind, key) DO NOTHING
            """,
            [
                PostgresValue(kind), PostgresValue(key), .int64(runID), PostgresValue(target),
                PostgresValue(Self.storable(error)),
            ]
        ).affectedRows == 1
    }

    /// Puts an unknown or failed effect back to pending, deliberately (`runner outbox resend`),
    /// noting who asked and when; nil when there is no such effect in either state.
    public func requeue(_ id: Int64, kind: String, by who: String) async throws -> Effect? {
        try await connection.query(
            """
            UPDATE runner.effects
            SET status = 'pending', leased_until = NULL, done_at = NULL,
                last_error = format('queued again by %s at %s; was %s: %s', $3::text,
                                    to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), status,
                                    coalesce(last_error, ''))
            WHERE id = $1::bigint AND kind = $2 AND status IN ('unknown', 'failed')
            RETURNING \(Effect.columns)
            """, [.int64(id), PostgresValue(kind), PostgresValue(Storable.text(who, limit: 200))]
        ).first.map(Effect.init(row:))
    }

    /// This ledger's random id, made by its first migration: Message-IDs and provider
    /// idempotency keys carry it, so two ledgers (staging and production, or a reset one) on
    /// one provider account never reuse each other's.
    public func ledgerID() async throws -> String {
        guard let id = try await connection.query("SELECT id FROM runner.ledger").first?.string("id") else {
            throw PostgresError(.query, "runner.ledger has no id: run runner migrate")
        }
        return id
    }

    /// A transient failure: stays pending, with the reason, for a later attempt.
    public func markRetryable(_ id: Int64, error: String) async throws {
        try await connection.query(
            "UPDATE runner.effects SET leased_until = NULL, last_error = $2 WHERE id = $1::bigint AND status = 'pending'",
            [.int64(id), PostgresValue(Self.storable(error))])
    }

    /// An effect's error as stored: redacted, storable, at most 4 KiB.
    static func storable(_ error: String?) -> String? {
        error.map { Storable.text(Redactor.process($0), limit: 4096) }
    }

    /// Records how an attempt ended. The outside effect has happened (or not) already, so the
    /// record must not be lost to a database restart: the statement is idempotent and is
    /// retried through a lost connection for up to ``markPatience`` (the connection resets
    /// itself on the next try). Only after that does the effect fall to the lost-lease rule.
    private func finish(_ id: Int64, status: Status, error: String?) async throws {
        let error = Self.storable(error)
        try await retryingThroughConnectionLoss(
            for: Self.markPatience, firstDelay: .milliseconds(200), maxDelay: .seconds(2)
        ) {
            try await write(id, status: status, error: error)
        }
    }

    private func write(_ id: Int64, status: Status, error: String?) async throws {
        try await connection.query(
            """
            UPDATE runner.effects SET status = $2, last_error = coalesce($3, last_error), done_at = now(),
                                      leased_until = NULL
            WHERE id = $1::bigint
            """, [.int64(id), PostgresValue(status.rawValue), PostgresValue(error)])
    }

    static let markPatience: Duration = .seconds(30)

    /// Pending effects of a kind that a new run should finish: never attempted, or attempted
    /// and failed transiently. Effects whose attempt died mid-send are marked failed first.
    public func pending(kind: String, keyPrefix: String = "", limit: Int = 1000) async throws -> [Effect] {
        try await failUnknownOutcomes(
            "kind = $1 AND starts_with(key, $2)", [PostgresValue(kind), PostgresValue(keyPrefix)])
        return try await connection.query(
            """
            SELECT \(Effect.columns) FROM runner.effects
            WHERE kind = $1 AND starts_with(key, $2) AND status = 'pending' AND leased_until IS NULL
            ORDER BY id LIMIT $3::integer
            """, [PostgresValue(kind), PostgresValue(keyPrefix), .int(limit)]
        ).map(Effect.init(row:))
    }

    /// Which of `keys` are already recorded for `kind`: one query.
    public func recordedKeys(kind: String, keys: [String]) async throws -> Set<String> {
        guard !keys.isEmpty else { return [] }
        return Set(
            try await connection.query(
                "SELECT key FROM runner.effects WHERE kind = $1 AND key = ANY($2::text[])",
                [PostgresValue(kind), .array(keys)]
            ).compactMap { try $0.string("key") })
    }

    /// Effects for `runner outbox`, newest first.
    public func list(kind: String? = nil, status: Status? = nil, limit: Int = 50) async throws -> [Effect] {
        try await connection.query(
            """
            SELECT \(Effect.columns) FROM runner.effects
            WHERE ($1::text IS NULL OR status = $1) AND ($3::text IS NULL OR kind = $3)
            ORDER BY id DESC LIMIT $2::integer
            """, [PostgresValue(status?.rawValue), .int(limit), PostgresValue(kind)]
        ).map(Effect.init(row:))
    }
}
