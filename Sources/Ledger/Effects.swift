import Foundation
import PostgresClient
import Redaction
import RunnerSupport

/// The idempotency ledger for everything with an outside effect (email, insight, webhook).
///
/// An effect is recorded (UNIQUE kind + key) before it is performed, leased in a committed
/// statement just before each attempt, and marked after. So:
/// - the same effect is never recorded twice, however many runs find it;
/// - only one process at a time attempts it (the lease);
/// - what becomes of an attempt whose process died is declared per kind (``Recovery``).
///
/// This is the only code that speaks SQL to `runner.effects`: agents ask it to record keys,
/// say which are recorded, claim, lease and mark them.
/// A kind of effect (`runner.effects.kind`) and its ``Effects/Recovery``: declared where the
/// effect is made (a channel, an agent), so the ledger knows no kind by name.
public struct EffectKind: Sendable, Equatable, CustomStringConvertible {
    public let name: String
    public let recovery: Effects.Recovery

    public init(_ name: String, recovery: Effects.Recovery) {
        self.name = name
        self.recovery = recovery
    }

    public var description: String { name }
}

public struct Effects: Sendable {
    /// What happens to an effect whose process died while it was in hand, declared once per kind.
    public enum Recovery: Sendable, Equatable {
        /// An email: an attempt whose lease ran out with no outcome may have been delivered, so
        /// it is never repeated but marked `unknown` for a person to check.
        case atMostOnce
        /// An insight row: its write is idempotent by key, so a claim left pending (or done, with
        /// its row since deleted) for longer than this is taken over and redone.
        case redo(after: Duration)
        /// A task-monitor alert: it follows the digest email that carries it (sent, drafted,
        /// failed: claimable again).
        case followsGroup
    }


    /// An effect's state as a run needs it to decide what to do with it.
    public struct Recorded: Sendable, Equatable {
        public let id: Int64
        public let status: Status
        /// Recorded by this call, not found recorded.
        public let isNew: Bool
        public let doneAt: Date?
    }

    /// An effect to record: its key, who it goes to, and what a later run needs to perform it.
    public struct Entry: Sendable {
        public let key: String
        public let target: String?
        public let payload: String

        public init(key: String, target: String?, payload: String) {
            self.key = key
            self.target = target
            self.payload = payload
        }
    }

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

        package init(row: PostgresRow) throws {
            id = try row.int64("id") ?? 0
            kind = try row.string("kind", default: "")
            key = try row.string("key", default: "")
            runID = try row.int64("run_id")
            let id = self.id
            status = try row.known("status", as: Status.self, row: "effect \(id)")
            target = try row.string("target")
            payload = try row.string("payload").flatMap(JSONValue.parse) ?? .null
            attempts = try row.int("attempts") ?? 0
            lastError = try row.string("last_error")
            createdAt = try row.date("created_at") ?? Date(timeIntervalSince1970: 0)
            doneAt = try row.date("done_at")
        }
    }

    /// Never the heartbeat's: a long batch of effect writes must not delay the lease's renewal.
    package let connection: PostgresConnection
    /// Whose effects these are: recorded under it, and only its pending ones are finished here.
    /// Keys stay unique per kind across namespaces (a key names the outside effect itself).
    public let namespace: String

    public init(connection: PostgresConnection, namespace: String) {
        self.connection = connection
        self.namespace = namespace
    }

    /// The effects of `ledger`'s namespace, on its connection.
    public init(ledger: Ledger) {
        self.init(connection: ledger.connection, namespace: ledger.namespace)
    }

    private var ns: PostgresValue { PostgresValue(namespace) }

    /// Records an effect about to be performed. Returns it and whether this call created it;
    /// an existing effect (of any status) is returned untouched.
    public func record(kind: String, key: String, runID: Int64?, target: String?, payload: JSONValue) async throws
        -> (effect: Effect, isNew: Bool)
    {
        let inserted = try await connection.query(
            """
            INSERT INTO runner.effects (namespace, kind, key, run_id, status, target, payload)
            VALUES ($6, $1, $2, $3::bigint, 'pending', $4, $5::jsonb)
            ON CONFLICT (kind, key) DO NOTHING
            RETURNING \(Effect.columns)
            """,
            [
                PostgresValue(kind), PostgresValue(key), .int64(runID), PostgresValue(target),
                PostgresValue(payload.text), ns,
            ])
        if let row = inserted.first { return (try Effect(row: row), true) }
        guard let existing = try await effect(kind: kind, key: key) else {
            throw LedgerError("effect \(kind)/\(key) conflicted but cannot be read")
        }
        return (existing, false)
    }

    /// One effect by its id (as `runner outbox` lists it), if it is of `kind`.
    public func effect(id: Int64, kind: String) async throws -> Effect? {
        try await connection.query(
            "SELECT \(Effect.columns) FROM runner.effects WHERE id = $1::bigint AND kind = $2 AND namespace = $3",
            [.int64(id), PostgresValue(kind), ns]
        ).first.map(Effect.init(row:))
    }

    public func effect(kind: String, key: String) async throws -> Effect? {
        try await connection.query(
            "SELECT \(Effect.columns) FROM runner.effects WHERE kind = $1 AND key = $2",
            [PostgresValue(kind), PostgresValue(key)]
        ).first.map(Effect.init(row:))
    }

    /// Takes the right to attempt a pending effect of an ``Recovery/atMostOnce`` kind for `lease`;
    /// false if another process holds it, it is no longer pending, or an earlier attempt died
    /// mid-send (then it is marked unknown). Committed before the attempt starts.
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
            INSERT INTO runner.effects (namespace, kind, key, run_id, status, target, payload, last_error, done_at)
            VALUES ($6, $1, $2, $3::bigint, 'failed', $4, '{}'::jsonb, $5, now())
            ON CONFLICT (kind, key) DO NOTHING
            """,
            [
                PostgresValue(kind), PostgresValue(key), .int64(runID), PostgresValue(target),
                PostgresValue(Self.storable(error)), ns,
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
            WHERE id = $1::bigint AND kind = $2 AND namespace = $4 AND status IN ('unknown', 'failed')
            RETURNING \(Effect.columns)
            """, [.int64(id), PostgresValue(kind), PostgresValue(Storable.text(who, limit: 200)), ns]
        ).first.map(Effect.init(row:))
    }

    /// This ledger's random id, made by its first migration: Message-IDs and provider
    /// idempotency keys carry it, so two ledgers (staging and production, or a reset one) on
    /// one provider account never reuse each other's.
    public func ledgerID() async throws -> String {
        guard let id = try await connection.query("SELECT id FROM runner.ledger").first?.string("id") else {
            throw LedgerError("runner.ledger has no id: run runner migrate")
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
    package static func storable(_ error: String?) -> String? {
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

    package static let markPatience: Duration = .seconds(30)

    /// Pending effects of a kind that a new run should finish: never attempted, or attempted
    /// and failed transiently. Effects whose attempt died mid-send are marked failed first.
    /// `after`: only those with a larger id (the next page).
    public func pending(kind effectKind: EffectKind, keyPrefix: String = "", limit: Int = 1000, after: Int64 = 0)
        async throws -> [Effect]
    {
        let kind = effectKind.name
        if effectKind.recovery == .atMostOnce {
            try await failUnknownOutcomes(
                "namespace = $3 AND kind = $1 AND starts_with(key, $2)", [PostgresValue(kind), PostgresValue(keyPrefix), ns])
        }
        return try await connection.query(
            """
            SELECT \(Effect.columns) FROM runner.effects
            WHERE namespace = $4 AND kind = $1 AND starts_with(key, $2) AND status = 'pending' AND leased_until IS NULL
              AND id > $5::bigint
            ORDER BY id LIMIT $3::integer
            """, [PostgresValue(kind), PostgresValue(keyPrefix), .int(limit), ns, .int64(after)]
        ).map(Effect.init(row:))
    }

    /// Which of `keys` are already recorded for `kind`: one query.
    public func recordedKeys(kind: String, keys: [String]) async throws -> Set<String> {
        Set(try await recorded(kind, keys: keys).keys)
    }

    /// The state of those of `keys` recorded for `kind`: one query per 2,000 keys, each key one
    /// probe of the unique index. (Written as `key = ANY($2)`, the planner picks a scan of the
    /// whole table while its statistics still say the table is small: during a large first
    /// run, each page's lookup grew from 2 to 50 ms.)
    public func recorded(_ kind: String, keys: [String]) async throws -> [String: Recorded] {
        var found: [String: Recorded] = [:]
        for batch in Self.batches(keys.count) {
            let rows = try await connection.query(
                """
                SELECT e.id, e.key, e.status, extract(epoch FROM e.done_at)::float8 AS done_at
                FROM unnest($2::text[]) AS k(key)
                CROSS JOIN LATERAL (
                    SELECT id, key, status, done_at FROM runner.effects WHERE kind = $1 AND key = k.key LIMIT 1
                ) e
                """, [PostgresValue(kind), .array(Array(keys[batch]))])
            for row in rows {
                let id = try row.int64("id") ?? 0
                found[try row.string("key", default: "")] = Recorded(
                    id: id, status: try row.known("status", as: Status.self, row: "effect \(id)"), isNew: false,
                    doneAt: try row.double("done_at").map(Date.init(timeIntervalSince1970:)))
            }
        }
        return found
    }

    /// Records every entry not yet recorded, as `status` (pending, or draft when nothing can
    /// perform them), and returns the state of all of them: new ones with `isNew`. One insert
    /// and at most one read per 2,000 entries, which keeps a statement's parameters to a few
    /// megabytes.
    public func record(_ kind: String, _ entries: [Entry], runID: Int64?, as status: Status = .pending)
        async throws -> [String: Recorded]
    {
        var recorded: [String: Recorded] = [:]
        for batch in Self.batches(entries.count) {
            let slice = entries[batch]
            let inserted = try await connection.query(
                """
                INSERT INTO runner.effects (namespace, kind, key, run_id, status, target, payload, done_at)
                SELECT $7, $1, e.key, $2::bigint, $3, e.target, e.payload::jsonb, CASE WHEN $3 = 'draft' THEN now() END
                FROM unnest($4::text[], $5::text[], $6::text[]) AS e(key, target, payload)
                ON CONFLICT (kind, key) DO NOTHING
                RETURNING id, key
                """,
                [
                    PostgresValue(kind), .int64(runID), PostgresValue(status.rawValue), .array(slice.map(\.key)),
                    .array(slice.map(\.target)), .array(slice.map(\.payload)), ns,
                ])
            for row in inserted {
                recorded[try row.string("key", default: "")] = Recorded(
                    id: try row.int64("id") ?? 0, status: status, isNew: true, doneAt: nil)
            }
        }
        let earlier = entries.map(\.key).filter { recorded[$0] == nil }
        if !earlier.isEmpty { recorded.merge(try await self.recorded(kind, keys: earlier)) { new, _ in new } }
        return recorded
    }

    package static func batches(_ count: Int, of size: Int = 2000) -> [Range<Int>] {
        stride(from: 0, to: count, by: size).map { $0..<min($0 + size, count) }
    }

    // MARK: Claims redone after a lost lease (insights)

    /// The claims of a `.redo` kind another run holds but that may be taken over: left pending
    /// by a run that stopped, or done though the thing they made is gone. The wait keeps a run
    /// still working on them from being overtaken.
    package static func redoable(_ kind: EffectKind) -> String {
        guard case .redo(let after) = kind.recovery else { return "false" }
        return """
            status IN ('pending', 'sent') AND coalesce(done_at, created_at) < now() - interval '\(after.components.seconds) seconds'
            """
    }

    /// Claims `keys` for this run: those newly recorded, and those of a `.redo` kind that may be
    /// taken over. One statement; keys are taken in sorted order, so concurrent runs claiming
    /// overlapping keys wait for each other instead of deadlocking.
    public func claim(_ kind: EffectKind, keys: [String], runID: Int64?, target: String) async throws -> Set<String> {
        guard !keys.isEmpty else { return [] }
        let rows = try await connection.query(
            """
            WITH inserted AS (
                INSERT INTO runner.effects (namespace, kind, key, run_id, status, target)
                SELECT $5, $1, k, $2::bigint, 'pending', $4 FROM unnest($3::text[]) AS k
                ON CONFLICT (kind, key) DO NOTHING
                RETURNING key
            )
            SELECT key FROM inserted
            UNION
            SELECT key FROM runner.effects
            WHERE kind = $1 AND key = ANY($3::text[]) AND \(Self.redoable(kind))
            """, [PostgresValue(kind.name), .int64(runID), .array(keys.sorted()), PostgresValue(target), ns])
        return Set(try rows.compactMap { try $0.string("key") })
    }

    /// The claims under `keys` are done.
    public func markDone(_ kind: String, keys: [String]) async throws {
        try await connection.query(
            "UPDATE runner.effects SET status = 'sent', done_at = now() WHERE kind = $1 AND key = ANY($2::text[])",
            [PostgresValue(kind), .array(keys)])
    }

    /// Claims and performs a page of writes in one statement, on `connection` (a connection to
    /// the ledger's database of the caller's own): each key is recorded done and its row written,
    /// or neither. `input` is a CTE named `input` with a `key` column, its parameters from `$3`;
    /// `write` is the INSERT, given the SQL set of claimed keys (nil: every input row is new).
    ///
    /// The first attempt inserts plainly, which costs the server least. If a key is taken (a
    /// concurrent run claimed it, or a run that stopped early left it) the unique constraint
    /// refuses the whole statement and the careful form runs instead: it skips keys another
    /// run holds and takes over those that ``Recovery/redo(after:)`` allows.
    public func claimAndWrite(
        _ kind: EffectKind, runID: Int64, input: String, write: (_ claimedKeys: String?) -> String,
        parameters: [PostgresValue], on connection: PostgresConnection
    ) async throws -> (claimed: Int, written: Int) {
        // The namespace goes last, so the caller's parameters keep their numbers from $3.
        let parameters = [PostgresValue(kind.name), .int64(runID)] + parameters + [ns]
        let namespaceParameter = "$\(parameters.count)"
        func claimed(careful: Bool) -> String {
            """
            claimed AS (
                INSERT INTO runner.effects (namespace, kind, key, run_id, status, target, attempts, done_at)
                SELECT \(namespaceParameter), $1, key, $2::bigint, 'sent', 'insights', 1, now() FROM input
                \(careful ? "ON CONFLICT (kind, key) DO NOTHING" : "")
                RETURNING key
            )
            """
        }
        let plain = """
            WITH \(input), \(claimed(careful: false)),
            written AS (\(write(nil)) RETURNING 1)
            SELECT (SELECT count(*) FROM claimed) AS claimed, (SELECT count(*) FROM written) AS written
            """
        let careful = """
            WITH \(input), \(claimed(careful: true)),
            redone AS (
                UPDATE runner.effects e SET status = 'sent', done_at = now(), attempts = e.attempts + 1, run_id = $2::bigint
                WHERE e.kind = $1 AND \(Self.redoable(kind))
                  AND e.key IN (SELECT key FROM input EXCEPT SELECT key FROM claimed)
                RETURNING e.key
            ),
            written AS (
                \(write("(SELECT key FROM claimed UNION ALL SELECT key FROM redone)"))
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM claimed) + (SELECT count(*) FROM redone) AS claimed,
                   (SELECT count(*) FROM written) AS written
            """
        let rows: PostgresRows
        do {
            rows = try await connection.query(plain, parameters)
        } catch {
            guard error.isUniqueViolation else { throw error }
            rows = try await connection.query(careful, parameters)
        }
        return (try rows.first?.int("claimed") ?? 0, try rows.first?.int("written") ?? 0)
    }

    // MARK: Effects carried by another (task-monitor alerts in their digest)

    /// Claims member effects (alerts) for one leader effect (the digest email that carries
    /// them) in one transaction, so a crash cannot leave a member recorded without its
    /// leader. `pages` is called once; it hands each page of member keys to `claim`, which
    /// returns the keys this run claimed: new ones, those whose leader failed, and failed ones.
    /// It returns the leader's payload, or nil to record nothing (then nothing was claimed).
    /// Returns the leader's id, or nil when nothing was claimed.
    ///
    /// Nothing else may use this ledger's connection meanwhile. `lockTimeout` bounds how long a
    /// claim waits for another run's uncommitted group (an overlapping run of the same job).
    public func recordGroup(
        members kind: String, leader: (kind: String, key: String), target: String, runID: Int64,
        lockTimeout: Duration? = nil, pages: (_ claim: ([String]) async throws -> Set<String>) async throws -> String?
    ) async throws -> Int64? {
        try await connection.transaction { () async throws -> Int64? in
            if let lockTimeout {
                try await connection.execute("SET LOCAL lock_timeout = \(max(1, Int64(lockTimeout.milliseconds)))")
            }
            guard
                let leaderID = try await connection.query(
                    """
                    INSERT INTO runner.effects (namespace, kind, key, run_id, status, target, payload)
                    VALUES ($5, $1, $2, $3::bigint, 'pending', $4, '{}'::jsonb)
                    RETURNING id
                    """,
                    [PostgresValue(leader.kind), PostgresValue(leader.key), .int64(runID), PostgresValue(target), ns]
                ).first?.int64("id")
            else { throw LedgerError("the digest effect was not recorded") }
            let payload = try await pages { keys in
                guard !keys.isEmpty else { return [] }
                let rows = try await connection.query(
                    """
                    INSERT INTO runner.effects AS e (namespace, kind, key, run_id, status, target, payload)
                    SELECT $6, $1, k, $2::bigint, 'pending', $3, jsonb_build_object('digest_effect_id', $5::bigint)
                    FROM unnest($4::text[]) AS k
                    ON CONFLICT (kind, key) DO UPDATE
                        SET run_id = excluded.run_id, status = 'pending', target = excluded.target,
                            payload = excluded.payload, done_at = NULL, attempts = 0, last_error = NULL
                        WHERE e.status = 'failed'
                           OR (e.status = 'pending' AND EXISTS (
                                SELECT 1 FROM runner.effects d
                                WHERE d.id = (e.payload->>'digest_effect_id')::bigint AND d.status = 'failed'))
                    RETURNING key
                    """,
                    [PostgresValue(kind), .int64(runID), PostgresValue(target), .array(keys), .int64(leaderID), ns])
                return Set(try rows.compactMap { try $0.string("key") })
            }
            // No payload: nothing is recorded (the transaction is rolled back).
            guard let payload else { return nil }
            try await connection.query(
                "UPDATE runner.effects SET payload = $2::jsonb WHERE id = $1::bigint",
                [.int64(leaderID), PostgresValue(payload)])
            return leaderID
        }
    }

    /// The members of a leader take its outcome: sent or drafted (they were told), or failed
    /// (claimable again by the next run).
    public func settleGroup(members kind: String, leaderID: Int64, as status: Status) async throws {
        try await connection.query(
            """
            UPDATE runner.effects SET status = $1, done_at = now()
            WHERE kind = $2 AND payload->>'digest_effect_id' = $3
            """, [PostgresValue(status.rawValue), PostgresValue(kind), PostgresValue(String(leaderID))])
    }

    /// Effects for `runner outbox`, newest first.
    public func list(kind: String? = nil, status: Status? = nil, limit: Int = 50) async throws -> [Effect] {
        try await connection.query(
            """
            SELECT \(Effect.columns) FROM runner.effects
            WHERE ($1::text IS NULL OR status = $1) AND ($3::text IS NULL OR kind = $3) AND namespace = $4
            ORDER BY id DESC LIMIT $2::integer
            """, [PostgresValue(status?.rawValue), .int(limit), PostgresValue(kind), ns]
        ).map(Effect.init(row:))
    }
}
