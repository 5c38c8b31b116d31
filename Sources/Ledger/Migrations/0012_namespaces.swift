extension Migration {
    /// One ledger, many services: every row of a job belongs to a namespace (a job table's
    /// `namespace:`), and a job is (namespace, name). Rows written before this version are the
    /// `default` namespace's. The columns are added with a constant default, which Postgres
    /// records in the catalog without rewriting the table, and the default is then dropped, so a
    /// statement that forgets its namespace fails instead of writing into `default`.
    ///
    /// Also, per job: `removed_at` (a table without the job registered itself after it: kept, not
    /// deleted, so a rolling deploy that runs two versions of a table side by side never moves a
    /// job's definition time) and `checked_through` (every slot up to it has a row or is owed
    /// nothing: the missed-slot check goes on from there instead of rescanning history).
    ///
    /// Effects keep their one key per kind across namespaces: a key names the outside effect
    /// (the agent, the product's database, the target), so two services running one agent on one
    /// product still send each email once; `namespace` says whose run recorded it, who sends it
    /// when it is pending, and whose retention deletes it.
    package static let v0012Namespaces = Migration(
        version: 12,
        name: "namespaces",
        sql: """
            ALTER TABLE runner.jobs ADD COLUMN namespace text NOT NULL DEFAULT 'default',
                ADD COLUMN removed_at timestamptz, ADD COLUMN checked_through timestamptz;
            ALTER TABLE runner.jobs ALTER COLUMN namespace DROP DEFAULT;
            ALTER TABLE runner.jobs DROP CONSTRAINT jobs_pkey;
            ALTER TABLE runner.jobs ADD CONSTRAINT jobs_pkey PRIMARY KEY (namespace, name);

            ALTER TABLE runner.runs ADD COLUMN namespace text NOT NULL DEFAULT 'default';
            ALTER TABLE runner.runs ALTER COLUMN namespace DROP DEFAULT;
            ALTER TABLE runner.runs DROP CONSTRAINT runs_job_slot_key;
            ALTER TABLE runner.runs ADD CONSTRAINT runs_job_slot_key UNIQUE (namespace, job, slot_key);

            ALTER TABLE runner.effects ADD COLUMN namespace text NOT NULL DEFAULT 'default';
            ALTER TABLE runner.effects ALTER COLUMN namespace DROP DEFAULT;

            ALTER TABLE runner.metrics ADD COLUMN namespace text NOT NULL DEFAULT 'default';
            ALTER TABLE runner.metrics ALTER COLUMN namespace DROP DEFAULT;

            ALTER TABLE runner.pauses ADD COLUMN namespace text NOT NULL DEFAULT 'default';
            ALTER TABLE runner.pauses ALTER COLUMN namespace DROP DEFAULT;
            DROP INDEX runner.pauses_open;
            CREATE UNIQUE INDEX pauses_open ON runner.pauses (namespace, job) WHERE resumed_at IS NULL;

            ALTER TABLE runner.maintenance ADD COLUMN namespace text NOT NULL DEFAULT 'default';
            ALTER TABLE runner.maintenance ALTER COLUMN namespace DROP DEFAULT;
            ALTER TABLE runner.maintenance DROP CONSTRAINT maintenance_pkey;
            ALTER TABLE runner.maintenance ADD CONSTRAINT maintenance_pkey PRIMARY KEY (namespace, task);

            -- Same columns first, namespace last: CREATE OR REPLACE keeps the views' grants.
            CREATE OR REPLACE VIEW runner.job_summary AS
            WITH real AS (
                SELECT namespace, job, id, slot_key, attempt, status, duration_ms, started_at, finished_at
                FROM runner.runs
                WHERE NOT dry_run AND status NOT IN ('skipped', 'missed')
            ),
            last_run AS (
                SELECT DISTINCT ON (namespace, job) namespace, job, id AS last_run_id, status AS last_status,
                       started_at AS last_started_at
                FROM real
                ORDER BY namespace, job, started_at DESC, id DESC
            ),
            last_success AS (
                SELECT namespace, job, max(finished_at) AS last_success_at FROM real WHERE status = 'succeeded'
                GROUP BY namespace, job
            ),
            durations AS (
                SELECT namespace, job,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_duration_ms,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms
                FROM real
                WHERE started_at > now() - interval '30 days' AND status <> 'running'
                GROUP BY namespace, job
            ),
            slots AS (
                SELECT DISTINCT ON (namespace, job, split_part(slot_key, '#', 1)) namespace, job, status
                FROM real
                WHERE started_at > now() - interval '7 days'
                  AND status IN ('succeeded', 'failed', 'timed_out', 'abandoned', 'interrupted')
                ORDER BY namespace, job, split_part(slot_key, '#', 1), attempt DESC, id DESC
            ),
            rates AS (
                SELECT namespace, job, count(*) AS slots_7d, count(*) FILTER (WHERE status = 'succeeded') AS succeeded_7d
                FROM slots GROUP BY namespace, job
            ),
            last_skip AS (
                SELECT DISTINCT ON (namespace, job) namespace, job, started_at AS last_skipped_at,
                       outcome->>'skipped_because' AS last_skip_reason
                FROM runner.runs
                WHERE status = 'skipped'
                ORDER BY namespace, job, started_at DESC, id DESC
            ),
            misses AS (
                SELECT namespace, job, count(*) AS missed_7d FROM runner.runs
                WHERE status = 'missed' AND started_at > now() - interval '7 days'
                GROUP BY namespace, job
            )
            SELECT j.name AS job,
                   j.schedule, j.timezone, j.next_slot,
                   l.last_run_id, l.last_status, l.last_started_at,
                   s.last_success_at,
                   CASE WHEN r.slots_7d > 0 THEN round(r.succeeded_7d::numeric / r.slots_7d, 4) END AS success_rate_7d,
                   d.p50_duration_ms, d.p95_duration_ms,
                   k.last_skipped_at, k.last_skip_reason,
                   coalesce(m.missed_7d, 0) AS missed_7d,
                   j.namespace
            FROM runner.jobs j
            LEFT JOIN last_run l ON l.namespace = j.namespace AND l.job = j.name
            LEFT JOIN last_success s ON s.namespace = j.namespace AND s.job = j.name
            LEFT JOIN durations d ON d.namespace = j.namespace AND d.job = j.name
            LEFT JOIN rates r ON r.namespace = j.namespace AND r.job = j.name
            LEFT JOIN last_skip k ON k.namespace = j.namespace AND k.job = j.name
            LEFT JOIN misses m ON m.namespace = j.namespace AND m.job = j.name
            WHERE j.removed_at IS NULL;

            CREATE OR REPLACE VIEW runner.daily_metrics AS
            SELECT (recorded_at AT TIME ZONE 'UTC')::date AS day, job, name, unit,
                   sum(value) AS total, count(*) AS samples, avg(value) AS average, max(value) AS maximum, namespace
            FROM runner.metrics
            GROUP BY 1, 2, 3, 4, namespace;
            """)
}
