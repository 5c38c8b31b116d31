import Foundation
import PostgresClient

/// What the ledger says about a job's state over time: its settled slots (for failed and
/// recovered), its first and latest slots and pauses (for missed), its open pause, and its
/// last notification.
extension Ledger {
    /// Rows of scheduled slots: not manual runs (`--force`), their retries, or dry runs.
    package static let scheduledOnly = "origin = 'schedule'"

    /// Where `slot` stands in `job`'s run of failures, from the rows themselves (no window):
    /// failed slots are those with a failed, timed-out or abandoned attempt and no success
    /// (a slot whose retry succeeded is a success; a shutdown's `interrupted` is neither).
    public struct Streak: Sendable, Equatable {
        /// The first failed slot after the last success before `slot`, up to `slot` itself.
        public let start: Date?
        /// Failed slots after that success, before `slot`.
        public let before: Int
        /// Whether `slot` itself has a failed attempt.
        public let atSlot: Bool
    }

    /// A failed slot's rows: a shutdown's `interrupted` is not the job's fault.
    package static let failure = "status IN ('failed', 'timed_out', 'abandoned')"

    public func streak(job: String, at slot: Date) async throws -> Streak {
        let failure = Self.failure
        let row = try await connection.query(
            """
            WITH last_ok AS (
                SELECT coalesce(max(slot), '-infinity'::timestamptz) AS s FROM runner.runs
                WHERE namespace = $3 AND job = $1 AND slot < $2::timestamptz AND status = 'succeeded'
                  AND \(Self.scheduledOnly)
            ), failed AS (
                SELECT DISTINCT slot FROM runner.runs, last_ok
                WHERE namespace = $3 AND job = $1 AND slot > last_ok.s AND slot <= $2::timestamptz AND \(failure) AND \(Self.scheduledOnly)
            )
            SELECT (SELECT min(slot) FROM failed) AS start,
                   (SELECT count(*) FROM failed WHERE slot < $2::timestamptz) AS before,
                   EXISTS (SELECT 1 FROM failed WHERE slot = $2::timestamptz) AS at_slot
            """, [PostgresValue(job), .timestamp(slot), ns]
        ).first
        return Streak(
            start: try row?.date("start"), before: try row?.int("before") ?? 0,
            atSlot: try row?.bool("at_slot") ?? false)
    }

    /// A job's scheduled history as the missed-slot check needs it.
    public struct SlotHistory: Sendable, Equatable {
        /// Its first and latest scheduled slot with a row (manual and dry runs left out); nil
        /// for a job that never ran: a job new to the table has missed nothing.
        public var first: Date?
        public var last: Date?
        /// When the job's schedule or zone took its present form: it owes no slot before that.
        public var definedAt: Date?
        /// Every slot up to this instant has a row or is owed nothing: the missed-slot check goes
        /// on from here (nil: never checked).
        public var checkedThrough: Date?
        /// Its pauses, oldest first: from, and until (nil: still paused).
        public var pauses: [Interval] = []

        public struct Interval: Sendable, Equatable {
            public let from: Date
            public let to: Date?

            public func contains(_ instant: Date) -> Bool { instant >= from && to.map { instant < $0 } ?? true }
        }

        /// The pause that holds `instant`, if any.
        public func paused(at instant: Date) -> Interval? { pauses.last { $0.contains(instant) } }
    }

    /// For every job of `jobs`, in one statement: its first and latest scheduled slot (two index
    /// probes each) and its pauses since a year before its latest slot.
    public func slotHistories(jobs: [String]) async throws -> [String: SlotHistory] {
        let rows = try await connection.query(
            """
            SELECT j.name,
                   (SELECT slot FROM runner.runs WHERE namespace = $2 AND job = j.name AND \(Self.scheduledOnly)
                    ORDER BY slot LIMIT 1) AS first_slot,
                   (SELECT slot FROM runner.runs WHERE namespace = $2 AND job = j.name AND \(Self.scheduledOnly)
                    ORDER BY slot DESC LIMIT 1) AS last_slot,
                   (SELECT nullif(defined_at, '-infinity') FROM runner.jobs WHERE namespace = $2 AND name = j.name)
                       AS defined_at,
                   (SELECT checked_through FROM runner.jobs WHERE namespace = $2 AND name = j.name) AS checked_through,
                   (SELECT array_agg(extract(epoch FROM p.paused_at)::text || '/'
                                     || coalesce(extract(epoch FROM least(p.resumed_at, p.until))::text, '')
                                     ORDER BY p.paused_at)
                    FROM runner.pauses p
                    WHERE p.namespace = $2 AND p.job = j.name
                      AND coalesce(least(p.resumed_at, p.until), 'infinity') > now() - interval '400 days') AS pauses
            FROM unnest($1::text[]) AS j(name)
            """, [.array(jobs), ns])
        var result: [String: SlotHistory] = [:]
        for row in rows {
            guard let name = try row.string("name") else { continue }
            var history = SlotHistory(first: try row.date("first_slot"), last: try row.date("last_slot"))
            history.definedAt = try row.date("defined_at")
            history.checkedThrough = try row.date("checked_through")
            for text in (try row.stringArray("pauses") ?? []).compactMap({ $0 }) {
                let parts = text.split(separator: "/", omittingEmptySubsequences: false)
                guard parts.count == 2, let from = Double(parts[0]) else { continue }
                history.pauses.append(
                    .init(
                        from: Date(timeIntervalSince1970: from),
                        to: Double(parts[1]).map { Date(timeIntervalSince1970: $0) }))
            }
            result[name] = history
        }
        return result
    }

    /// A span of one job's slots: after `after`, up to and including `through`.
    public struct Span: Sendable, Equatable {
        public let job: String
        public let after: Date
        public let through: Date

        public init(job: String, after: Date, through: Date) {
            (self.job, self.after, self.through) = (job, after, through)
        }
    }

    /// The slots that have a scheduled row (any attempt, any status), per job, within each span:
    /// one statement for every job, an index range scan each.
    public func scheduledSlots(in spans: [Span]) async throws -> [String: Set<Date>] {
        guard !spans.isEmpty else { return [:] }
        var result: [String: Set<Date>] = [:]
        for row in try await connection.query(
            """
            SELECT DISTINCT s.job, r.slot
            FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS s(job, after, through)
            JOIN runner.runs r
              ON r.namespace = $4 AND r.job = s.job AND r.slot > s.after AND r.slot <= s.through
             AND r.\(Self.scheduledOnly)
            """,
            [.array(spans.map(\.job)), .timestamps(spans.map(\.after)), .timestamps(spans.map(\.through)), ns])
        {
            if let job = try row.string("job"), let slot = try row.date("slot") { result[job, default: []].insert(slot) }
        }
        return result
    }

    /// Moves each job's checked-through mark forward to its instant (never back).
    public func markChecked(_ marks: [String: Date]) async throws {
        guard !marks.isEmpty else { return }
        let pairs = marks.sorted { $0.key < $1.key }
        try await connection.query(
            """
            UPDATE runner.jobs j SET checked_through = m.through
            FROM unnest($1::text[], $2::timestamptz[]) AS m(name, through)
            WHERE j.namespace = $3 AND j.name = m.name
              AND (j.checked_through IS NULL OR j.checked_through < m.through)
            """, [.array(pairs.map(\.key)), .timestamps(pairs.map(\.value)), ns])
    }

    /// A job's pause as `runner status` shows it.
    public struct Pause: Sendable, Equatable {
        public let job: String
        public let pausedAt: Date
        public let until: Date?
        public let reason: String?
        public let pausedBy: String
    }

    /// Pauses `job` from now (until `until`, or until resumed). A job already paused keeps its
    /// pause, with the new end and reason. Returns the pause.
    public func pause(job: String, until: Date?, reason: String?, by who: String) async throws -> Pause {
        let parameters = [
            PostgresValue(job), until.map(PostgresValue.timestamp) ?? PostgresValue(nil as String?),
            PostgresValue(reason), PostgresValue(who), ns,
        ]
        let rows = try await connection.transaction { connection in
            // A pause that ran out ended then: closed first, so the new one starts now.
            try connection.query(
                """
                UPDATE runner.pauses SET resumed_at = until
                WHERE namespace = $2 AND job = $1 AND resumed_at IS NULL AND until <= now()
                """, [PostgresValue(job), ns])
            return try connection.query(
                """
                INSERT INTO runner.pauses (namespace, job, until, reason, paused_by)
                VALUES ($5, $1, $2::timestamptz, $3, $4)
                ON CONFLICT (namespace, job) WHERE resumed_at IS NULL
                DO UPDATE SET until = excluded.until, reason = excluded.reason, paused_by = excluded.paused_by
                RETURNING job, paused_at, until, reason, paused_by
                """, parameters)
        }
        guard let row = rows.first, let pause = try Self.pause(row) else {
            throw LedgerError("the pause of \(job) was not recorded")
        }
        return pause
    }

    /// Ends `job`'s open pause; false when it had none (or it had already run out).
    public func resume(job: String, by who: String) async throws -> Bool {
        try await connection.query(
            """
            UPDATE runner.pauses SET resumed_at = least(now(), coalesce(until, now())), resumed_by = $2
            WHERE namespace = $3 AND job = $1 AND resumed_at IS NULL
            RETURNING until IS NULL OR until > now() AS was_active
            """, [PostgresValue(job), PostgresValue(who), ns]
        ).first?.bool("was_active") ?? false
    }

    /// The open pauses among `jobs` (not resumed, not run out).
    public func activePauses(jobs: [String]) async throws -> [String: Pause] {
        var result: [String: Pause] = [:]
        for row in try await connection.query(
            """
            SELECT job, paused_at, until, reason, paused_by FROM runner.pauses
            WHERE namespace = $2 AND job = ANY($1::text[]) AND resumed_at IS NULL AND (until IS NULL OR until > now())
            """, [.array(jobs), ns])
        {
            if let pause = try Self.pause(row) { result[pause.job] = pause }
        }
        return result
    }

    private static func pause(_ row: PostgresRow) throws -> Pause? {
        guard let job = try row.string("job"), let pausedAt = try row.date("paused_at") else { return nil }
        return Pause(
            job: job, pausedAt: pausedAt, until: try row.date("until"), reason: try row.string("reason"),
            pausedBy: try row.string("paused_by", default: ""))
    }

    /// The missed slots of the last `since` (of `job`, or every job of the namespace; of every
    /// namespace with `allNamespaces`), newest first.
    public func missedSlots(job: String?, since: Date, limit: Int = 1000, allNamespaces: Bool = false) async throws
        -> [RunRecord]
    {
        try await connection.query(
            """
            SELECT \(RunRecord.columns) FROM runner.runs
            WHERE status = 'missed' AND slot >= $1::timestamptz AND ($2::text IS NULL OR job = $2)
              AND ($4::text IS NULL OR namespace = $4)
            ORDER BY slot DESC, namespace, job LIMIT $3::integer
            """, [.timestamp(since), PostgresValue(job), .int(limit), allNamespaces ? PostgresValue(nil as String?) : ns]
        ).map(RunRecord.init(row:))
    }

    /// Per job: how many of its latest settled slots failed in a row (0 when the last succeeded):
    /// its failed slots since its last success, as ``streak(job:at:)`` counts them, each job two
    /// index scans rather than all its rows.
    public func failureStreaks(jobs: [String]) async throws -> [String: Int] {
        var result: [String: Int] = [:]
        for row in try await connection.query(
            """
            SELECT j.name AS job,
                   (SELECT count(DISTINCT r.slot) FROM runner.runs r
                    WHERE r.namespace = $2 AND r.job = j.name AND \(Self.failure) AND \(Self.scheduledOnly)
                      AND r.slot > coalesce(
                          (SELECT max(slot) FROM runner.runs
                           WHERE namespace = $2 AND job = j.name AND status = 'succeeded' AND \(Self.scheduledOnly)),
                          '-infinity'::timestamptz)) AS streak
            FROM unnest($1::text[]) AS j(name)
            """, [.array(jobs), ns])
        {
            if let job = try row.string("job") { result[job] = try row.int("streak") ?? 0 }
        }
        return result
    }

    /// Per job: the latest of its effects of `kinds` keyed `keyPrefix JOB|EVENT|…`, when it was
    /// recorded and its EVENT (the notifier's keys: ``lastNotifications(jobs:)`` in Outbox).
    package func latestKeyedEffects(jobs: [String], kinds: [String], keyPrefix: String) async throws
        -> [String: (at: Date, event: String)]
    {
        var result: [String: (Date, String)] = [:]
        for row in try await connection.query(
            """
            SELECT DISTINCT ON (j.name) j.name, e.created_at, split_part(e.key, '|', 2) AS event
            FROM unnest($1::text[]) AS j(name)
            JOIN runner.effects e
              ON e.kind = ANY($4::text[]) AND e.namespace = $2
             AND starts_with(e.key, $3 || j.name || '|')
            ORDER BY j.name, e.created_at DESC
            """, [.array(jobs), ns, PostgresValue(keyPrefix), .array(kinds)])
        {
            if let job = try row.string("name"), let at = try row.date("created_at") {
                result[job] = (at, try row.string("event", default: ""))
            }
        }
        return result
    }
}
