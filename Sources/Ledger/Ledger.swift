import Foundation
import JobTable
import PostgresClient
import Redaction
import RunnerSupport

/// The `runner` schema in Postgres: claims, heartbeats, outcomes, metrics and the review queries.
///
/// A ledger value speaks for one namespace (a job table's `namespace:`): every statement that
/// reads or writes a job's rows names it, so services sharing one database never touch each
/// other's jobs. Only the views built for it (``history(_:)`` with `allNamespaces`) look wider.
public struct Ledger: Sendable {
    public let connection: PostgresConnection
    /// Whose jobs this ledger value reads and writes.
    public let namespace: String

    public init(connection: PostgresConnection, namespace: String) {
        self.connection = connection
        self.namespace = namespace
    }

    /// The namespace as a statement parameter.
    package var ns: PostgresValue { PostgresValue(namespace) }

    public enum ClaimResult: Sendable, Equatable {
        /// This process owns the slot and must run it.
        case claimed(runID: Int64)
        /// The job still has a live run; the slot was recorded as skipped.
        case skipped(runID: Int64, liveRunID: Int64)
        /// Someone already claimed this slot.
        case taken(runID: Int64, status: RunStatus)
        /// The database's clock had passed the request's `notAfter`, or this host's clock its `claimBy`:
        /// nothing was written.
        case tooLate
        /// The request's gate was closed (a shutdown) when its turn came: nothing was written.
        case stopped
    }

    public struct ClaimRequest: Sendable {
        public var job: String
        public var slot: Date
        public var slotKey: String
        public var trigger: RunTrigger
        /// A slot's, a manual run's or a dry run's chain of attempts.
        public var origin: RunOrigin
        public var attempt: Int = 1
        public var claimedBy: String
        public var lease: Duration
        public var skipIfRunning: Bool
        /// The claim is made only while the database's clock is before this instant (a retry
        /// never starts once the next slot began, nor past catchup): checked in the INSERT
        /// itself, so no process that paused between its check and its claim can start late.
        public var notAfter: Date?
        /// Checked on the connection's thread just before the INSERT; closed: nothing is claimed.
        public var gate: ClaimGate?
        /// Checked there too, on this host's monotonic clock: a claim that reaches the INSERT
        /// later is ``ClaimResult/tooLate`` (a claim tried again must land within its window,
        /// however long it waited for the connection).
        public var claimBy: ContinuousClock.Instant?

        public init(
            job: String, slot: Date, slotKey: String, trigger: RunTrigger, origin: RunOrigin = .schedule,
            attempt: Int = 1, claimedBy: String, lease: Duration, skipIfRunning: Bool, notAfter: Date? = nil, gate: ClaimGate? = nil,
            claimBy: ContinuousClock.Instant? = nil
        ) {
            self.gate = gate
            self.claimBy = claimBy
            self.job = job
            self.slot = slot
            self.slotKey = slotKey
            self.trigger = trigger
            self.origin = origin
            self.attempt = attempt
            self.claimedBy = claimedBy
            self.lease = lease
            self.skipIfRunning = skipIfRunning
            self.notAfter = notAfter
        }
    }

    /// The key of a scheduled slot: its instant in UTC, to the second.
    public static func slotKey(for slot: Date) -> String {
        InstantFormat.string(slot, in: TimeZone(identifier: "UTC")!).replacingOccurrences(of: "+00:00", with: "Z")
    }

    /// `host:pid`, recorded as `claimed_by`.
    public static var processIdentity: String {
        "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// Claims `(job, slot_key)`. Exactly one caller gets `.claimed` (or `.skipped` when the job
    /// has a live run and the request skips overlaps); every other caller gets `.taken`.
    ///
    /// The UNIQUE (job, slot_key) constraint is the guarantee. Plain statements rather than a
    /// server-side function: a short-lived `runner once` would pay the function's compilation
    /// in every new session.
    public func claim(_ request: ClaimRequest) async throws -> ClaimResult {
        // Fast path, no lock: the slot is already taken (the second call in a slot ends here).
        if let existing = try await existingRun(job: request.job, slotKey: request.slotKey) {
            return .taken(runID: existing.id, status: existing.status)
        }
        let (gate, claimBy) = (request.gate, request.claimBy)
        /// Why the claim may not go on, checked just before its INSERT: nil, it may.
        let refusal: @Sendable () -> ClaimResult? = {
            if gate?.isOpen == false { return .stopped }
            if let claimBy, ContinuousClock.now >= claimBy { return .tooLate }
            return nil
        }
        if let refused = refusal() { return refused }
        guard request.skipIfRunning else {
            let parameters = claimParameters(request)
            let inserted = try await connection.inTurn { connection -> Result<PostgresRows, Refused> in
                if let refused = refusal() { return .failure(Refused(result: refused)) }
                return .success(try connection.query(
                """
                INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, dry_run, claimed_by,
                                         lease_seconds, origin)
                SELECT $10, $1, $2::timestamptz, $3, $4, $5::integer, 'running', $6::boolean, $7, $8::integer, $11
                WHERE $9::timestamptz IS NULL OR clock_timestamp() < $9::timestamptz
                ON CONFLICT (namespace, job, slot_key) DO NOTHING
                RETURNING id
                """, parameters))
            }
            let rows: PostgresRows
            switch inserted {
            case .failure(let refused): return refused.result
            case .success(let inserted): rows = inserted
            }
            if let runID = try rows.first?.int64("id") { return .claimed(runID: runID) }
            return try await takenRun(request)
        }
        // The overlap check and the insert must not interleave with another claim of the job: a
        // transaction-level lock (safe behind PgBouncer), then a fresh snapshot in the next statement.
        let parameters = claimParameters(request)
        let claimed: ClaimResult? = try await connection.transaction { connection in
            if let refused = refusal() { return refused }
            try connection.query(
                "SELECT pg_advisory_xact_lock(hashtext('runner.claim'), hashtext($2 || '/' || $1))",
                [PostgresValue(request.job), ns])
            let rows = try connection.query(
                """
                WITH abandoned AS (\(Self.markAbandonedSQL(namespace: "$10"))),
                live AS (
                    -- Only a slot's runs hold the job: a dry or manual run (or a manual run's
                    -- retry) never makes a slot skip.
                    SELECT id FROM runner.runs
                    WHERE namespace = $10 AND job = $1 AND status = 'running' AND origin = 'schedule'
                      AND heartbeat_at >= now() - make_interval(secs => lease_seconds)
                    ORDER BY id LIMIT 1
                )
                INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, dry_run, claimed_by,
                                         lease_seconds, finished_at, duration_ms, outcome, origin)
                SELECT $10, $1, $2::timestamptz, $3, $4, $5::integer,
                       CASE WHEN live.id IS NULL THEN 'running' ELSE 'skipped' END,
                       $6::boolean, $7, $8::integer,
                       CASE WHEN live.id IS NULL THEN NULL ELSE now() END,
                       CASE WHEN live.id IS NULL THEN NULL ELSE 0 END,
                       CASE WHEN live.id IS NULL THEN NULL
                            ELSE jsonb_build_object('skipped_because', format('run %s is still running', live.id))
                       END,
                       $11
                FROM (SELECT 1) AS one LEFT JOIN live ON true
                WHERE $9::timestamptz IS NULL OR clock_timestamp() < $9::timestamptz
                ON CONFLICT (namespace, job, slot_key) DO NOTHING
                RETURNING id, status, (SELECT id FROM live) AS live_id
                """, parameters)
            guard let row = rows.first, let runID = try row.int64("id") else { return nil }
            if try row.string("status") == RunStatus.skipped.rawValue {
                return .skipped(runID: runID, liveRunID: try row.int64("live_id") ?? 0)
            }
            return .claimed(runID: runID)
        }
        if let claimed { return claimed }
        return try await takenRun(request)
    }

    /// The latest attempt of a chain: the job's runs of `slot` with `origin`, found through the
    /// (job, slot) index. (A manual run's slot is the instant it was started.)
    public func latestAttempt(job: String, slot: Date, origin: RunOrigin = .schedule) async throws -> RunRecord? {
        try await connection.query(
            """
            SELECT \(RunRecord.columns) FROM runner.runs
            WHERE namespace = $4 AND job = $1 AND slot = $2::timestamptz AND origin = $3
            ORDER BY attempt DESC, id DESC LIMIT 1
            """, [PostgresValue(job), .timestamp(slot), PostgresValue(origin.rawValue), ns]
        ).first.map(RunRecord.init(row:))
    }

    /// The key of attempt `attempt` of the chain whose first attempt is keyed `key`.
    public static func attemptKey(_ key: String, attempt: Int) -> String {
        attempt <= 1 ? key : "\(key)#\(attempt)"
    }

    /// The latest attempt of each of `slots` of `job` that has one, by slot key: one query
    /// for a whole backfill range.
    public func latestAttempts(job: String, slots: [Date]) async throws -> [String: RunRecord] {
        let rows = try await connection.query(
            """
            SELECT DISTINCT ON (slot) \(RunRecord.columns) FROM runner.runs
            WHERE namespace = $3 AND job = $1 AND slot = ANY($2::timestamptz[]) AND origin = 'schedule'
            ORDER BY slot, attempt DESC, id DESC
            """, [PostgresValue(job), .timestamps(slots), ns])
        var latest: [String: RunRecord] = [:]
        for row in rows {
            let record = try RunRecord(row: row)
            latest[Self.slotKey(for: record.slot)] = record
        }
        return latest
    }

    /// When each of `jobs`' latest successful real run ended: for `/metrics` at every scrape,
    /// so an index scan per job that stops at its first success, not the whole summary view.
    public func lastSuccess(jobs: [String]) async throws -> [String: Date] {
        let rows = try await connection.query(
            """
            SELECT j.name AS job, r.finished_at FROM unnest($1::text[]) AS j(name)
            CROSS JOIN LATERAL (
                SELECT finished_at FROM runner.runs
                WHERE namespace = $2 AND job = j.name AND status = 'succeeded' AND NOT dry_run
                ORDER BY started_at DESC, id DESC LIMIT 1
            ) AS r
            """, [.array(jobs), ns])
        var last: [String: Date] = [:]
        for row in rows {
            if let job = try row.string("job"), let at = try row.date("finished_at") { last[job] = at }
        }
        return last
    }

    /// Each of `jobs`' latest `limit` runs, newest first (dry runs left out): one query, an
    /// index scan per job.
    /// Without their output (`outcome` is nil) and with errors cut to 300 characters: what the
    /// status page shows, read at most once a second.
    public func recentRuns(jobs: [String], limit: Int = 30) async throws -> [String: [RunRecord]] {
        let rows = try await connection.query(
            """
            SELECT r.* FROM unnest($1::text[]) AS j(name)
            CROSS JOIN LATERAL (
                SELECT \(RunRecord.overviewColumns) FROM runner.runs
                WHERE namespace = $3 AND job = j.name AND NOT dry_run
                ORDER BY started_at DESC, id DESC LIMIT $2::integer
            ) AS r
            """, [.array(jobs), .int(limit), ns])
        var recent: [String: [RunRecord]] = [:]
        for row in rows {
            let record = try RunRecord(row: row)
            recent[record.job, default: []].append(record)
        }
        return recent
    }

    private func existingRun(job: String, slotKey: String) async throws -> (id: Int64, status: RunStatus)? {
        let rows = try await connection.query(
            "SELECT id, status FROM runner.runs WHERE namespace = $3 AND job = $1 AND slot_key = $2",
            [PostgresValue(job), PostgresValue(slotKey), ns])
        guard let row = rows.first, let id = try row.int64("id") else { return nil }
        return (id, try row.known("status", as: RunStatus.self, row: "run \(id)"))
    }

    /// The run that won the slot, after our insert wrote nothing: none means the request's
    /// `notAfter` had passed (a conflict always leaves the winner's row).
    /// A claim refused before its INSERT (``ClaimRequest/gate``, ``ClaimRequest/claimBy``).
    private struct Refused: Error {
        package let result: ClaimResult
    }

    private func takenRun(_ request: ClaimRequest) async throws -> ClaimResult {
        guard let existing = try await existingRun(job: request.job, slotKey: request.slotKey) else {
            if request.notAfter != nil { return .tooLate }
            throw LedgerError("slot \(request.slotKey) of \(request.job) conflicted but cannot be read")
        }
        return .taken(runID: existing.id, status: existing.status)
    }

    private func claimParameters(_ request: ClaimRequest) -> [PostgresValue] {
        [
            PostgresValue(request.job), .timestamp(request.slot), PostgresValue(request.slotKey),
            PostgresValue(request.trigger.rawValue), .int(request.attempt), .bool(request.origin == .dryRun),
            PostgresValue(request.claimedBy), .int(Int(max(1, request.lease.components.seconds))),
            .timestamp(request.notAfter), ns, PostgresValue(request.origin.rawValue),
        ]
    }

    /// Marks `running` runs of job `$1` (every job of the namespace when `$1` is NULL) whose
    /// heartbeat is older than their lease as abandoned, so the job may run again. A scheduled
    /// attempt's retry is due at once (`retry_at`), so the next slot that begins settles it if no
    /// call retries it first: a killed process's attempt is never left without a successor.
    /// `namespace`: the parameter that holds the namespace.
    package static func markAbandonedSQL(namespace: String) -> String {
        """
        UPDATE runner.runs
        SET status = 'abandoned',
            finished_at = now(),
            retry_at = CASE WHEN origin = 'schedule' THEN now() END,
            duration_ms = (extract(epoch FROM heartbeat_at - started_at) * 1000)::bigint,
            error = format('abandoned: no heartbeat from %s since %s (lease %s s); the process is gone',
                           claimed_by, to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                           lease_seconds)
        WHERE status = 'running' AND namespace = \(namespace)
          AND ($1::text IS NULL OR job = $1)
          AND heartbeat_at < now() - make_interval(secs => lease_seconds)
        RETURNING id
        """
    }

    /// The database's clock, to the microsecond: the one clock every process of a ledger
    /// shares, whatever their hosts' clocks say.
    public func databaseNow() async throws -> Date {
        guard
            let microseconds = try await connection.query(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS us"
            ).first?.int64("us")
        else { throw LedgerError("the database did not say what time it is") }
        return Date(timeIntervalSince1970: Double(microseconds) / 1_000_000)
    }

    /// The database's clock, and this host's clock against it: the host's at the middle of the
    /// round trip less the database's, in ms (a round trip slowed by a queue of queries is
    /// uncertainty, not skew), and that half round trip, in seconds.
    public func clockReading() async throws -> (now: Date, skewMs: Double, halfTrip: Double) {
        let before = Date()
        let now = try await databaseNow()
        let halfTrip = Date().timeIntervalSince(before) / 2
        return (now, (before.addingTimeInterval(halfTrip).timeIntervalSince(now) * 1000).rounded(), halfTrip)
    }

    /// Records that `slot` of `job` was found later than its catchup and will not run: a
    /// `missed` row under the slot's own key, once (nil when the slot already has a row).
    public func recordMissed(job: String, slot: Date, reason: String) async throws -> Int64? {
        try await recordMissed([job: [slot]], trigger: .once, reason: reason).first?.id
    }

    /// A slot row this call wrote (a missed or paused slot).
    public struct WrittenSlot: Sendable, Equatable {
        public let id: Int64
        public let job: String
        public let slot: Date

        package init(id: Int64, job: String, slot: Date) {
            self.id = id
            self.job = job
            self.slot = slot
        }
    }

    /// Records each slot of `slots` (per job) that has no row as `missed`, in one statement
    /// however many jobs: what a stalled scheduler passed over (trigger `schedule`), or the slot
    /// a late `runner once` found (trigger `once`). Returns the rows it wrote: only those, so
    /// among any number of processes exactly one reports each missed slot.
    @discardableResult
    public func recordMissed(_ slots: [String: [Date]], trigger: RunTrigger = .schedule, reason: String)
        async throws -> [WrittenSlot]
    {
        try await recordPassed(slots, trigger: trigger, status: .missed, reason: reason)
    }

    /// Records slots a paused job passed over as `skipped` (reason paused): no `missed` for them.
    @discardableResult
    public func recordPaused(_ slots: [String: [Date]], trigger: RunTrigger, reason: String) async throws
        -> [WrittenSlot]
    {
        try await recordPassed(slots, trigger: trigger, status: .skipped, reason: reason)
    }

    /// Records slots that a catch-up's run served as `skipped` (reason coalesced): a stall or
    /// restart within catchup runs the latest slot once, and the ones before it are neither run
    /// late nor missed.
    @discardableResult
    public func recordCoalesced(_ slots: [String: [Date]], servedBy: [String: Date], trigger: RunTrigger) async throws
        -> [WrittenSlot]
    {
        var written: [WrittenSlot] = []
        // One statement per slot that served them (usually one per job), so each row says which.
        let groups = Dictionary(grouping: slots.keys) { servedBy[$0].map(Self.slotKey(for:)) ?? "" }
        for (served, jobs) in groups.sorted(by: { $0.key < $1.key }) {
            let subset = Dictionary(uniqueKeysWithValues: jobs.map { ($0, slots[$0] ?? []) })
            written += try await recordPassed(
                subset, trigger: trigger, status: .skipped,
                reason: "coalesced: served by slot \(served), run as a catch-up")
        }
        return written
    }

    private func recordPassed(_ slots: [String: [Date]], trigger: RunTrigger, status: RunStatus, reason: String)
        async throws -> [WrittenSlot]
    {
        let pairs = slots.sorted { $0.key < $1.key }.flatMap { job, dates in dates.map { (job, $0) } }
        guard !pairs.isEmpty else { return [] }
        return try await connection.query(
            """
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, status, claimed_by, lease_seconds,
                                     finished_at, duration_ms, error, outcome)
            SELECT $8, s.job, s.slot, s.key, $6, $7, $4, 1, now(), 0,
                   CASE WHEN $7 = 'missed' THEN $5 END,
                   CASE WHEN $7 = 'skipped' THEN jsonb_build_object('skipped_because', $5::text) END
            FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS s(job, slot, key)
            ON CONFLICT (namespace, job, slot_key) DO NOTHING
            RETURNING id, job, slot
            """,
            [
                .array(pairs.map(\.0)), .timestamps(pairs.map(\.1)), .array(pairs.map { Self.slotKey(for: $0.1) }),
                PostgresValue(Self.processIdentity), PostgresValue(reason), PostgresValue(trigger.rawValue),
                PostgresValue(status.rawValue), ns,
            ]
        ).compactMap { row in
            guard let id = try row.int64("id"), let job = try row.string("job"), let slot = try row.date("slot")
            else { return nil }
            return WrittenSlot(id: id, job: job, slot: slot)
        }
    }

    /// The slots of `jobs` whose latest attempt failed (or was abandoned) and whose retry is
    /// due by the database's clock, with no successor yet: what a process that died in its
    /// backoff left for whoever comes next.
    public func dueRetrySlots(jobs: [String]) async throws -> [(job: String, slot: Date)] {
        try await connection.query(
            """
            SELECT r.job, r.slot FROM runner.runs r
            WHERE r.retry_at IS NOT NULL AND r.retry_at <= now() AND r.namespace = $2 AND r.job = ANY($1::text[])
              AND r.origin = 'schedule'
              AND NOT EXISTS (
                  SELECT 1 FROM runner.runs s
                  WHERE s.namespace = r.namespace AND s.job = r.job AND s.slot = r.slot AND s.origin = 'schedule'
                    AND s.attempt = r.attempt + 1)
            """, [.array(jobs), ns]
        ).compactMap { row in
            guard let job = try row.string("job"), let slot = try row.date("slot") else { return nil }
            return (job, slot)
        }
    }

    /// Marks runs without a fresh heartbeat as abandoned; returns how many.
    @discardableResult
    public func markAbandoned(job: String? = nil) async throws -> Int {
        try await connection.query(Self.markAbandonedSQL(namespace: "$2"), [PostgresValue(job), ns]).count
    }

    /// Stops `job`'s live scheduled runs of slots before `slot` (`overlap: replace`): each is
    /// recorded `interrupted` with `reason`, and its process, whose next heartbeat finds the
    /// row no longer running, stops its work. Returns the runs stopped.
    @discardableResult
    public func interruptLiveRuns(job: String, before slot: Date, reason: String) async throws -> [Int64] {
        try await connection.query(
            """
            UPDATE runner.runs
            SET status = 'interrupted', finished_at = now(),
                duration_ms = (extract(epoch FROM now() - started_at) * 1000)::bigint, error = $3
            WHERE namespace = $4 AND job = $1 AND status = 'running' AND slot < $2::timestamptz AND origin = 'schedule'
            RETURNING id
            """, [PostgresValue(job), .timestamp(slot), PostgresValue(reason), ns]
        ).compactMap { try $0.int64("id") }
    }

    /// Refreshes a running run's heartbeat; false if the run is no longer `running`.
    public func heartbeat(runID: Int64) async throws -> Bool {
        try await heartbeat(runIDs: [runID]) == [runID]
    }

    /// Refreshes the heartbeats of runs still `running`, in one statement; returns their ids
    /// (a run missing from the answer is no longer running: another process abandoned it).
    public func heartbeat(runIDs: [Int64]) async throws -> [Int64] {
        try await connection.query(
            """
            UPDATE runner.runs SET heartbeat_at = now()
            WHERE id = ANY($1::bigint[]) AND status = 'running'
            RETURNING id
            """, [.array(runIDs.map(String.init))]
        ).map { try $0.int64("id") ?? 0 }
    }

    /// Records how a run ended, with its metrics: one statement, so one round trip and atomic.
    /// The outcome and error are redacted and made storable (no NUL, no NaN, the error at most
    /// 4 KiB); if the server still refuses the outcome, the run is finished without it, with
    /// why, so no run is ever left `running` by what it printed.
    ///
    /// `retryAfter`, for a failed or timed-out run, records in the same statement when its next
    /// attempt is due: the retry survives this process.
    public func finish(
        runID: Int64, job: String, status: RunStatus, durationMs: Int64, outcome: JSONValue?, error: String?,
        metrics: [Metric], retryAfter: Duration? = nil
    ) async throws {
        let retryAfter = status == .failed || status == .timedOut ? retryAfter : nil
        let redact = Redactor.process
        let error = error.map { Storable.text(redact($0), limit: 4096) }
        do {
            // Redacted before it is cut, so no secret is left half-masked at a cut.
            try await write(
                runID: runID, status: status, durationMs: durationMs,
                outcome: outcome.map { Storable.json(redact($0)) },
                error: error, metrics: metrics, retryAfter: retryAfter)
        } catch let refused as PostgresError where refused.kind == .query {
            try await write(
                runID: runID, status: status, durationMs: durationMs,
                outcome: ["outcome_dropped": .string(Storable.text(redact(refused.message), limit: 512))], error: error,
                metrics: metrics.filter { $0.value.isFinite }, retryAfter: retryAfter)
        }
    }

    private func write(
        runID: Int64, status: RunStatus, durationMs: Int64, outcome: JSONValue?, error: String?, metrics: [Metric],
        retryAfter: Duration?
    ) async throws {
        // A run another process marked abandoned meanwhile (this one was frozen past its lease)
        // keeps that status, which its retry followed, and gains `late_result`: what the work
        // really did, seen by the runner that survived to see it.
        try await connection.query(
            """
            WITH finished AS (
                UPDATE runner.runs
                SET status = $2, finished_at = now(), heartbeat_at = now(), duration_ms = $3::bigint,
                    outcome = $4::jsonb, error = $5, retry_at = now() + $9::interval
                WHERE id = $1::bigint AND status = 'running'
                RETURNING id, job, namespace
            ), late AS (
                UPDATE runner.runs
                SET outcome = coalesce(outcome, '{}'::jsonb) || jsonb_build_object('late_result', jsonb_build_object(
                        'status', $2, 'duration_ms', $3::bigint, 'outcome', $4::jsonb, 'error', $5,
                        'recorded_at', now()))
                WHERE id = $1::bigint AND status = 'abandoned' AND NOT coalesce(outcome ? 'late_result', false)
            )
            INSERT INTO runner.metrics (run_id, namespace, job, name, value, unit)
            SELECT f.id, f.namespace, f.job, m.name, m.value, m.unit
            FROM finished f, unnest($6::text[], $7::float8[], $8::text[]) AS m(name, value, unit)
            """,
            [
                .int64(runID), PostgresValue(status.rawValue), .int64(durationMs), PostgresValue(outcome?.text),
                PostgresValue(error),
            ] + Self.metricArrays(metrics) + [retryAfter.map(PostgresValue.interval) ?? PostgresValue(nil as String?)])
    }

    /// Retries of `job`'s slots before `slot` that were due but never claimed: the slot that
    /// began supersedes them, so each is recorded as a skipped attempt, not left to run late.
    /// An attempt has a successor only while `maxRetries` allow one (the table may have
    /// lowered them since it failed).
    /// Their `retry_at` is cleared in the same statement, so the partial index of pending
    /// retries holds only the current slot's, however long the job's history grows.
    @discardableResult
    public func supersedeRetries(job: String, before slot: Date, maxRetries: Int) async throws -> Int {
        try await connection.query(
            """
            WITH settled AS (
                UPDATE runner.runs SET retry_at = NULL
                WHERE namespace = $6 AND job = $1 AND retry_at IS NOT NULL AND slot < $2::timestamptz
                RETURNING job, slot, slot_key, attempt, status, origin
            )
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, claimed_by,
                                     lease_seconds, finished_at, duration_ms, outcome)
            SELECT $6, r.job, r.slot, split_part(r.slot_key, '#', 1) || '#' || (r.attempt + 1), 'retry', r.attempt + 1,
                   'skipped', $3, 1, now(), 0,
                   jsonb_build_object('skipped_because', 'superseded: slot ' || $4 || ' began before this retry ran')
            FROM settled r
            WHERE r.status IN ('failed', 'timed_out', 'abandoned') AND r.attempt <= $5::integer
              AND r.origin = 'schedule'
              AND NOT EXISTS (
                  SELECT 1 FROM runner.runs s
                  WHERE s.namespace = $6 AND s.job = r.job AND s.slot = r.slot AND s.origin = 'schedule'
                    AND s.attempt = r.attempt + 1)
            ON CONFLICT (namespace, job, slot_key) DO NOTHING
            RETURNING id
            """,
            [
                PostgresValue(job), .timestamp(slot), PostgresValue(Self.processIdentity),
                PostgresValue(Self.slotKey(for: slot)), .int(maxRetries), ns,
            ]
        ).count
    }

    /// Records attempt `attempt` of a slot as skipped without running it (its slot was
    /// superseded by the next, or lies past catchup); nil when that attempt already has a row.
    @discardableResult
    public func recordSkippedAttempt(
        job: String, slot: Date, slotKey: String, origin: RunOrigin = .schedule, attempt: Int, reason: String
    ) async throws -> Int64? {
        try await connection.query(
            """
            INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, attempt, status, claimed_by,
                                     lease_seconds, finished_at, duration_ms, outcome, origin)
            VALUES ($7, $1, $2::timestamptz, $3, 'retry', $4::integer, 'skipped', $5, 1, now(), 0,
                    jsonb_build_object('skipped_because', $6::text), $8)
            ON CONFLICT (namespace, job, slot_key) DO NOTHING
            RETURNING id
            """,
            [
                PostgresValue(job), .timestamp(slot), PostgresValue(slotKey), .int(attempt),
                PostgresValue(Self.processIdentity), PostgresValue(reason), ns, PostgresValue(origin.rawValue),
            ]
        ).first?.int64("id")
    }

    /// Writes counters in one statement, however many there are.
    /// With `scheduleDelay`, also `schedule_delay_ms` of the run: from its slot to its claim,
    /// both on the database's clock (the claim's `started_at`), so a fire claimed late in a
    /// busy tick counts its own wait, not the tick's.
    public func recordMetrics(_ metrics: [Metric], runID: Int64?, job: String, scheduleDelay: Bool = false)
        async throws
    {
        guard !metrics.isEmpty || scheduleDelay else { return }
        try await connection.query(
            """
            INSERT INTO runner.metrics (run_id, namespace, job, name, value, unit)
            SELECT $1::bigint, $7, $2, m.name, m.value, m.unit
            FROM unnest($3::text[], $4::float8[], $5::text[]) AS m(name, value, unit)
            UNION ALL
            SELECT id, namespace, job, 'schedule_delay_ms', round((extract(epoch FROM started_at - slot) * 1000)::numeric, 1),
                   'ms'
            FROM runner.runs WHERE $6::boolean AND id = $1::bigint
            """,
            [.int64(runID), PostgresValue(job)] + Self.metricArrays(metrics) + [.bool(scheduleDelay), ns])
    }

    /// Names, values and units as three parallel array parameters, for `unnest`.
    private static func metricArrays(_ metrics: [Metric]) -> [PostgresValue] {
        [.array(metrics.map(\.name)), .array(metrics.map { String($0.value) }), .array(metrics.map(\.unit))]
    }

    public func run(id: Int64) async throws -> RunRecord? {
        try await connection.query("SELECT \(RunRecord.columns) FROM runner.runs WHERE id = $1::bigint", [.int64(id)])
            .first.map(RunRecord.init(row:))
    }

    public struct HistoryFilter: Sendable {
        public var job: String?
        public var status: RunStatus?
        public var since: Date?
        public var limit: Int
        /// Every namespace's runs, not only the ledger value's own.
        public var allNamespaces: Bool

        public init(
            job: String? = nil, status: RunStatus? = nil, since: Date? = nil, limit: Int = 20,
            allNamespaces: Bool = false
        ) {
            self.job = job
            self.status = status
            self.since = since
            self.limit = limit
            self.allNamespaces = allNamespaces
        }
    }

    /// Runs, newest first.
    public func history(_ filter: HistoryFilter) async throws -> [RunRecord] {
        try await connection.query(
            """
            SELECT \(RunRecord.columns) FROM runner.runs
            WHERE ($1::text IS NULL OR job = $1)
              AND ($2::text IS NULL OR status = $2)
              AND ($3::timestamptz IS NULL OR started_at >= $3::timestamptz)
              AND ($5::text IS NULL OR namespace = $5)
            ORDER BY started_at DESC, id DESC
            LIMIT $4::integer
            """,
            [
                PostgresValue(filter.job), PostgresValue(filter.status?.rawValue), .timestamp(filter.since),
                .int(filter.limit), filter.allNamespaces ? PostgresValue(nil as String?) : ns,
            ]
        ).map(RunRecord.init(row:))
    }

    /// Every job the namespace knows: registered by a job table, or with runs.
    public func knownJobs() async throws -> [String] {
        try await connection.query(
            """
            SELECT name FROM runner.jobs WHERE namespace = $1
            UNION SELECT DISTINCT job FROM runner.runs WHERE namespace = $1 ORDER BY 1
            """, [ns]
        ).compactMap { try $0.string("name") }
    }

    /// Records what the job table says about each job, so the SQL views can show it.
    /// Registers the table's jobs with their next slot after `now`.
    /// `wholeTable`: these are all the jobs of the namespace's table: any other job of the
    /// namespace is marked removed (it leaves `runner.job_summary`; its rows stay). A single
    /// job's registration (`runner once`) leaves the others alone.
    public func registerJobs(_ jobs: [Job], at now: Date, wholeTable: Bool = false) async throws {
        try await registerJobs(
            jobs.map { ($0.name, $0.schedule.text, $0.timeZoneName, $0.schedule.next(after: now)) },
            wholeTable: wholeTable, at: now)
    }

    /// How long a job may be absent from every table of its namespace and come back as the same
    /// definition: a rolling deploy runs an old and a new table side by side for minutes, and
    /// must not reset what the job owes. Absent longer, it comes back as a new job.
    public static let removalGrace: Duration = .seconds(3600)

    /// `at`: the instant a new or changed definition counts from (`defined_at`); nil: the
    /// database's `now()`.
    ///
    /// A definition time moves only when the job's schedule or zone changes (or it comes back
    /// after ``removalGrace``): never because another process registered its table again, so
    /// two versions of a table registering in turn leave it where it is.
    public func registerJobs(
        _ jobs: [(name: String, schedule: String, timeZone: String, nextSlot: Date?)], wholeTable: Bool = false,
        at: Date? = nil
    ) async throws {
        guard !jobs.isEmpty else { return }
        // The UPDATE and the upsert touch disjoint names, so one statement does both.
        try await connection.query(
            """
            WITH removed AS (
                UPDATE runner.jobs SET removed_at = now()
                WHERE $5::boolean AND namespace = $7 AND removed_at IS NULL AND NOT (name = ANY($1::text[]))
            )
            INSERT INTO runner.jobs AS old (namespace, name, schedule, timezone, next_slot, updated_at, defined_at)
            SELECT $7, j.name, j.schedule, j.timezone, j.next_slot, now(), coalesce($6::timestamptz, now())
            FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS j(name, schedule, timezone, next_slot)
            ON CONFLICT (namespace, name) DO UPDATE
            SET schedule = excluded.schedule, timezone = excluded.timezone, next_slot = excluded.next_slot,
                updated_at = excluded.updated_at, removed_at = NULL,
                defined_at = CASE
                    WHEN (old.schedule, old.timezone) IS DISTINCT FROM (excluded.schedule, excluded.timezone)
                      OR old.removed_at < now() - $8::interval
                    THEN excluded.defined_at ELSE old.defined_at END
            -- Unchanged rows are left alone: most calls (every runner once of a slot) write nothing.
            WHERE (old.schedule, old.timezone, old.next_slot)
                IS DISTINCT FROM (excluded.schedule, excluded.timezone, excluded.next_slot)
               OR old.removed_at IS NOT NULL
            """,
            [
                .array(jobs.map(\.name)), .array(jobs.map(\.schedule)), .array(jobs.map(\.timeZone)),
                .array(jobs.map { $0.nextSlot.map(PostgresTimestamp.format) }), .bool(wholeTable),
                at.map(PostgresValue.timestamp) ?? PostgresValue(nil as String?), ns, .interval(Self.removalGrace),
            ])
    }

    /// When each of `jobs` that is registered in the namespace was marked removed (nil: it is
    /// in a table now); a job never registered is absent from the answer.
    public func removals(jobs: [String]) async throws -> [String: Date?] {
        var result: [String: Date?] = [:]
        for row in try await connection.query(
            "SELECT name, removed_at FROM runner.jobs WHERE namespace = $2 AND name = ANY($1::text[])",
            [.array(jobs), ns])
        {
            if let name = try row.string("name") { result[name] = .some(try row.date("removed_at")) }
        }
        return result
    }

    /// A job as a job table registered it (`runner.jobs`).
    public struct Registration: Sendable, Equatable {
        public let namespace: String
        public let name: String
        public let schedule: String
        public let timeZone: String
        public let nextSlot: Date?
    }

    /// The jobs registered in the namespace (every namespace with `allNamespaces`), not removed,
    /// by namespace and name: what `runner status` shows of a namespace whose table it lacks.
    public func registrations(allNamespaces: Bool = false) async throws -> [Registration] {
        try await connection.query(
            """
            SELECT namespace, name, schedule, timezone, next_slot FROM runner.jobs
            WHERE removed_at IS NULL AND ($1::text IS NULL OR namespace = $1)
            ORDER BY namespace, name
            """, [allNamespaces ? PostgresValue(nil as String?) : ns]
        ).map { row in
            Registration(
                namespace: try row.string("namespace", default: ""), name: try row.string("name", default: ""),
                schedule: try row.string("schedule", default: ""), timeZone: try row.string("timezone", default: "UTC"),
                nextSlot: try row.date("next_slot"))
        }
    }

    /// The namespaces that have jobs or runs, sorted.
    public func namespaces() async throws -> [String] {
        try await connection.query(
            "SELECT namespace FROM runner.jobs UNION SELECT DISTINCT namespace FROM runner.runs ORDER BY 1"
        ).compactMap { try $0.string("namespace") }
    }

    /// The same connection, speaking for `namespace`.
    public func within(_ namespace: String) -> Ledger { Ledger(connection: connection, namespace: namespace) }

    public struct JobSummary: Sendable {
        public let job: String
        public let lastRunID: Int64?
        public let lastStatus: RunStatus?
        public let lastStartedAt: Date?
        public let lastSuccessAt: Date?
        public let successRate7d: Double?
        public let p50DurationMs: Double?
        public let p95DurationMs: Double?
        public let lastSkippedAt: Date?
        public let lastSkipReason: String?
        public let missed7d: Int
    }

    public func summaries(jobs: [String]) async throws -> [String: JobSummary] {
        let rows = try await connection.query(
            """
            SELECT job, last_run_id, last_status, last_started_at, last_success_at, success_rate_7d,
                   p50_duration_ms, p95_duration_ms, last_skipped_at, last_skip_reason, missed_7d
            FROM runner.job_summary WHERE namespace = $2 AND job = ANY($1::text[])
            """, [.array(jobs), ns])
        var result: [String: JobSummary] = [:]
        for row in rows {
            let job = try row.string("job", default: "")
            result[job] = JobSummary(
                job: job, lastRunID: try row.int64("last_run_id"),
                lastStatus: try row.string("last_status").flatMap(RunStatus.init(rawValue:)),
                lastStartedAt: try row.date("last_started_at"), lastSuccessAt: try row.date("last_success_at"),
                successRate7d: try row.double("success_rate_7d"), p50DurationMs: try row.double("p50_duration_ms"),
                p95DurationMs: try row.double("p95_duration_ms"), lastSkippedAt: try row.date("last_skipped_at"),
                lastSkipReason: try row.string("last_skip_reason"), missed7d: try row.int("missed_7d") ?? 0)
        }
        return result
    }
}
