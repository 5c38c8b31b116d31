extension Migration {
    /// The claim as one server-side function: one round trip, atomic per job.
    static let v0002ClaimFunction = Migration(
        version: 2,
        name: "claim function",
        sql: """
            -- Marks runs of a job (or of every job, for NULL) whose heartbeat is older than their
            -- lease as abandoned, so the job may run again. Returns how many it marked.
            CREATE FUNCTION runner.mark_abandoned(p_job text) RETURNS integer
            LANGUAGE sql AS $$
                WITH marked AS (
                    UPDATE runner.runs
                    SET status = 'abandoned',
                        finished_at = now(),
                        duration_ms = (extract(epoch FROM heartbeat_at - started_at) * 1000)::bigint,
                        error = format('abandoned: no heartbeat from %s since %s (lease %s s); the process is gone',
                                       claimed_by, to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                       lease_seconds)
                    WHERE status = 'running'
                      AND (p_job IS NULL OR job = p_job)
                      AND heartbeat_at < now() - make_interval(secs => lease_seconds)
                    RETURNING 1
                )
                SELECT count(*)::integer FROM marked
            $$;

            -- Claims (job, slot_key). Exactly one caller gets 'claimed' (or 'skipped' when the job
            -- has a live run and p_skip_if_running); every other caller gets 'taken' and the
            -- existing run. The UNIQUE (job, slot_key) constraint is the guarantee; the per-job
            -- transaction lock only keeps the overlap check and the insert together.
            CREATE FUNCTION runner.claim(
                p_job text, p_slot timestamptz, p_slot_key text, p_trigger text, p_attempt integer,
                p_dry_run boolean, p_claimed_by text, p_lease_seconds integer, p_skip_if_running boolean)
            RETURNS TABLE (result text, run_id bigint, run_status text, live_run_id bigint)
            LANGUAGE plpgsql AS $$
            DECLARE
                v_id bigint;
                v_status text;
                v_live bigint;
            BEGIN
                PERFORM pg_advisory_xact_lock(hashtext('runner.claim'), hashtext(p_job));
                PERFORM runner.mark_abandoned(p_job);

                SELECT r.id, r.status INTO v_id, v_status
                FROM runner.runs r WHERE r.job = p_job AND r.slot_key = p_slot_key;
                IF FOUND THEN
                    RETURN QUERY SELECT 'taken'::text, v_id, v_status, NULL::bigint;
                    RETURN;
                END IF;

                IF p_skip_if_running THEN
                    SELECT r.id INTO v_live FROM runner.runs r
                    WHERE r.job = p_job AND r.status = 'running' ORDER BY r.id LIMIT 1;
                END IF;

                INSERT INTO runner.runs AS r (job, slot, slot_key, trigger, attempt, status, dry_run, claimed_by,
                                              lease_seconds, finished_at, duration_ms, outcome)
                VALUES (p_job, p_slot, p_slot_key, p_trigger, p_attempt,
                        CASE WHEN v_live IS NULL THEN 'running' ELSE 'skipped' END,
                        p_dry_run, p_claimed_by, p_lease_seconds,
                        CASE WHEN v_live IS NULL THEN NULL ELSE now() END,
                        CASE WHEN v_live IS NULL THEN NULL ELSE 0 END,
                        CASE WHEN v_live IS NULL THEN NULL
                             ELSE jsonb_build_object('skipped_because', format('run %s is still running', v_live)) END)
                ON CONFLICT (job, slot_key) DO NOTHING
                RETURNING r.id, r.status INTO v_id, v_status;

                IF v_id IS NULL THEN
                    SELECT r.id, r.status INTO v_id, v_status
                    FROM runner.runs r WHERE r.job = p_job AND r.slot_key = p_slot_key;
                    RETURN QUERY SELECT 'taken'::text, v_id, v_status, NULL::bigint;
                    RETURN;
                END IF;
                RETURN QUERY SELECT CASE WHEN v_live IS NULL THEN 'claimed' ELSE 'skipped' END, v_id, v_status, v_live;
            END
            $$;
            """
    )
}
