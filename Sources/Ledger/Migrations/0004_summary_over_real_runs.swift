extension Migration {
    /// The job summary counts what it says. Over real runs only: dry runs, skipped and missed
    /// rows stay out of durations, percentiles, last status and last success, and have columns
    /// of their own (the last skip and why, misses in 7 days). The success rate is per slot, the
    /// last attempt deciding (`SLOT#2` retries the slot `SLOT`). And the `missed` status: a slot
    /// that `runner once` found later than its catchup.
    package static let v0004SummaryOverRealRuns = Migration(
        version: 4,
        name: "job summary over real runs, per slot",
        sql: """
            ALTER TABLE runner.runs DROP CONSTRAINT runs_status_check;
            ALTER TABLE runner.runs ADD CONSTRAINT runs_status_check
                CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out', 'skipped', 'abandoned',
                                  'interrupted', 'missed'));
            DROP VIEW runner.job_summary;
            CREATE VIEW runner.job_summary AS
            WITH real AS (
                SELECT job, id, slot_key, attempt, status, duration_ms, started_at, finished_at
                FROM runner.runs
                WHERE NOT dry_run AND status NOT IN ('skipped', 'missed')
            ),
            last_run AS (
                SELECT DISTINCT ON (job) job, id AS last_run_id, status AS last_status, started_at AS last_started_at
                FROM real
                ORDER BY job, started_at DESC, id DESC
            ),
            last_success AS (
                SELECT job, max(finished_at) AS last_success_at FROM real WHERE status = 'succeeded' GROUP BY job
            ),
            durations AS (
                SELECT job,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_duration_ms,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms
                FROM real
                WHERE started_at > now() - interval '30 days' AND status <> 'running'
                GROUP BY job
            ),
            slots AS (
                SELECT DISTINCT ON (job, split_part(slot_key, '#', 1)) job, status
                FROM real
                WHERE started_at > now() - interval '7 days'
                  AND status IN ('succeeded', 'failed', 'timed_out', 'abandoned', 'interrupted')
                ORDER BY job, split_part(slot_key, '#', 1), attempt DESC, id DESC
            ),
            rates AS (
                SELECT job, count(*) AS slots_7d, count(*) FILTER (WHERE status = 'succeeded') AS succeeded_7d
                FROM slots GROUP BY job
            ),
            last_skip AS (
                SELECT DISTINCT ON (job) job, started_at AS last_skipped_at,
                       outcome->>'skipped_because' AS last_skip_reason
                FROM runner.runs
                WHERE status = 'skipped'
                ORDER BY job, started_at DESC, id DESC
            ),
            misses AS (
                SELECT job, count(*) AS missed_7d FROM runner.runs
                WHERE status = 'missed' AND started_at > now() - interval '7 days'
                GROUP BY job
            )
            SELECT coalesce(j.name, l.job) AS job,
                   j.schedule, j.timezone, j.next_slot,
                   l.last_run_id, l.last_status, l.last_started_at,
                   s.last_success_at,
                   CASE WHEN r.slots_7d > 0 THEN round(r.succeeded_7d::numeric / r.slots_7d, 4) END AS success_rate_7d,
                   d.p50_duration_ms, d.p95_duration_ms,
                   k.last_skipped_at, k.last_skip_reason,
                   coalesce(m.missed_7d, 0) AS missed_7d
            FROM runner.jobs j
            FULL JOIN last_run l ON l.job = j.name
            LEFT JOIN last_success s ON s.job = coalesce(j.name, l.job)
            LEFT JOIN durations d ON d.job = coalesce(j.name, l.job)
            LEFT JOIN rates r ON r.job = coalesce(j.name, l.job)
            LEFT JOIN last_skip k ON k.job = coalesce(j.name, l.job)
            LEFT JOIN misses m ON m.job = coalesce(j.name, l.job);
            """)
}
