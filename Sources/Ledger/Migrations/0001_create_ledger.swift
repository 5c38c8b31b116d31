extension Migration {
    /// The runs, effects and metrics ledgers, and the jobs the runner has seen.
    package static let v0001CreateLedger = Migration(
        version: 1,
        name: "create ledger",
        sql: """
            CREATE TABLE runner.jobs (
                name        text PRIMARY KEY,
                schedule    text NOT NULL,
                timezone    text NOT NULL,
                next_slot   timestamptz,
                updated_at  timestamptz NOT NULL DEFAULT now()
            );

            CREATE TABLE runner.runs (
                id            bigserial PRIMARY KEY,
                job           text NOT NULL,
                slot          timestamptz NOT NULL,
                slot_key      text NOT NULL,
                trigger       text NOT NULL
                              CHECK (trigger IN ('schedule', 'once', 'manual', 'retry', 'catchup')),
                attempt       integer NOT NULL DEFAULT 1,
                status        text NOT NULL
                              CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out', 'skipped',
                                                'abandoned', 'interrupted')),
                dry_run       boolean NOT NULL DEFAULT false,
                claimed_by    text NOT NULL,
                started_at    timestamptz NOT NULL DEFAULT now(),
                heartbeat_at  timestamptz NOT NULL DEFAULT now(),
                lease_seconds integer NOT NULL,
                finished_at   timestamptz,
                duration_ms   bigint,
                outcome       jsonb,
                error         text,
                CONSTRAINT runs_job_slot_key UNIQUE (job, slot_key)
            );
            CREATE INDEX runs_job_started ON runner.runs (job, started_at DESC);
            CREATE INDEX runs_started ON runner.runs (started_at DESC);
            CREATE INDEX runs_running ON runner.runs (job) WHERE status = 'running';
            CREATE INDEX runs_retention ON runner.runs (status, finished_at);

            CREATE TABLE runner.effects (
                id          bigserial PRIMARY KEY,
                kind        text NOT NULL,
                key         text NOT NULL,
                run_id      bigint REFERENCES runner.runs (id) ON DELETE SET NULL,
                status      text NOT NULL CHECK (status IN ('pending', 'sent', 'draft', 'failed')),
                target      text,
                payload     jsonb NOT NULL DEFAULT '{}',
                attempts    integer NOT NULL DEFAULT 0,
                -- Set, and committed, just before an attempt: a lease that expires with no
                -- outcome means the attempt's process died mid-send.
                leased_until timestamptz,
                last_error  text,
                created_at  timestamptz NOT NULL DEFAULT now(),
                done_at     timestamptz,
                CONSTRAINT effects_kind_key UNIQUE (kind, key)
            );
            CREATE INDEX effects_status ON runner.effects (status, created_at);
            -- Email payloads are a few kilobytes each and a large run records 100,000 of them:
            -- lz4 compresses them several times faster than the default pglz. A server built
            -- without lz4 keeps the default.
            DO $$ BEGIN
                ALTER TABLE runner.effects ALTER COLUMN payload SET COMPRESSION lz4;
            EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN NULL;
            END $$;
            CREATE INDEX effects_run ON runner.effects (run_id);

            CREATE TABLE runner.metrics (
                id           bigserial PRIMARY KEY,
                run_id       bigint REFERENCES runner.runs (id) ON DELETE CASCADE,
                job          text NOT NULL,
                name         text NOT NULL,
                value        double precision NOT NULL,
                unit         text NOT NULL DEFAULT '',
                labels       jsonb NOT NULL DEFAULT '{}',
                recorded_at  timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX metrics_job_time ON runner.metrics (job, recorded_at);
            CREATE INDEX metrics_run ON runner.metrics (run_id);

            -- Per job: last run, last status, 7-day success rate, p50/p95 duration over 30 days.
            CREATE VIEW runner.job_summary AS
            WITH recent AS (
                SELECT job, status, duration_ms, started_at
                FROM runner.runs
                WHERE started_at > now() - interval '30 days'
            ),
            last_run AS (
                SELECT DISTINCT ON (job) job, id AS last_run_id, status AS last_status, started_at AS last_started_at
                FROM runner.runs
                ORDER BY job, started_at DESC, id DESC
            ),
            last_success AS (
                SELECT job, max(finished_at) AS last_success_at
                FROM runner.runs WHERE status = 'succeeded' GROUP BY job
            ),
            stats AS (
                SELECT job,
                       count(*) FILTER (WHERE started_at > now() - interval '7 days'
                                          AND status IN ('succeeded', 'failed', 'timed_out', 'abandoned',
                                                         'interrupted')) AS finished_7d,
                       count(*) FILTER (WHERE started_at > now() - interval '7 days'
                                          AND status = 'succeeded') AS succeeded_7d,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_duration_ms,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms
                FROM recent GROUP BY job
            )
            SELECT coalesce(j.name, l.job) AS job,
                   j.schedule, j.timezone, j.next_slot,
                   l.last_run_id, l.last_status, l.last_started_at,
                   s.last_success_at,
                   CASE WHEN st.finished_7d > 0 THEN round(st.succeeded_7d::numeric / st.finished_7d, 4) END
                       AS success_rate_7d,
                   st.p50_duration_ms, st.p95_duration_ms
            FROM runner.jobs j
            FULL JOIN last_run l ON l.job = j.name
            LEFT JOIN last_success s ON s.job = coalesce(j.name, l.job)
            LEFT JOIN stats st ON st.job = coalesce(j.name, l.job);

            -- Per day (UTC), job and metric: total, count, average, maximum.
            CREATE VIEW runner.daily_metrics AS
            SELECT (recorded_at AT TIME ZONE 'UTC')::date AS day, job, name, unit,
                   sum(value) AS total, count(*) AS samples, avg(value) AS average, max(value) AS maximum
            FROM runner.metrics
            GROUP BY 1, 2, 3, 4;
            """
    )
}
