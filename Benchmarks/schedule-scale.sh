#!/usr/bin/env bash
# Scale of `runner schedule`: JOBS jobs (default 10,000) on `@every 10s` (JOBS/10 fires a second,
# every slot aligned to the epoch, so all of them fall due together), REPLICAS replicas (default 3)
# on one embedded PostgreSQL, for SECONDS seconds (default 60). Prints the fires per second held,
# the slots that ran against those due, the schedule delay p50/p99/max, duplicate slots (must
# be 0), and each replica's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-10000}
replicas=${REPLICAS:-3}
seconds=${SECONDS_RUN:-60}
source Benchmarks/embedded-postgres.sh scale
{
    echo "jobs:"
    for ((i = 0; i < jobs; i++)); do
        printf '  j%05d: {command: ["true"], schedule: "@every 10s"}\n' "$i"
    done
} >"$work/jobs.yaml"
export RUNNER_CONFIG=$work/jobs.yaml
"$bin" check >/dev/null

pids=()
for ((r = 0; r < replicas; r++)); do
    "$bin" schedule >"$work/replica-$r.log" 2>&1 &
    pids+=($!)
done
# The window starts at the first whole 10 s after every replica has planned its jobs.
sleep 5
start=$("$psql_bin" "$url" -Atc "SELECT to_timestamp(ceil(extract(epoch FROM now()) / 10) * 10)")
peaks=()
for ((t = 0; t < seconds + 5; t += 5)); do sleep 5; done
for pid in "${pids[@]}"; do
    peaks+=($(($(awk '/VmHWM/ { print $2 }' /proc/"$pid"/status) / 1024)))
    kill -TERM "$pid"
done
for pid in "${pids[@]}"; do wait "$pid" || true; done

"$psql_bin" "$url" -At -F ' ' -v start="$start" -v seconds="$seconds" -v jobs="$jobs" <<'SQL' |
WITH window_runs AS (
    SELECT r.* FROM runner.runs r
    WHERE r.slot >= :'start'::timestamptz
      AND r.slot < :'start'::timestamptz + make_interval(secs => :seconds)
      AND r.trigger IN ('schedule', 'catchup') AND r.attempt = 1
), per_slot AS (
    SELECT job, slot, count(*) AS n FROM window_runs GROUP BY job, slot
), delay AS (
    SELECT m.value FROM runner.metrics m JOIN window_runs w ON w.id = m.run_id
    WHERE m.name = 'schedule_delay_ms'
)
SELECT (SELECT count(*) FROM window_runs WHERE status <> 'missed'),
       (:seconds / 10) * :jobs,
       (SELECT count(*) FROM window_runs WHERE status = 'missed'),
       (SELECT count(*) FROM per_slot WHERE n > 1),
       (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY value)::numeric, 1) FROM delay),
       (SELECT round(percentile_cont(0.99) WITHIN GROUP (ORDER BY value)::numeric, 1) FROM delay),
       (SELECT round(max(value)::numeric, 1) FROM delay),
       (SELECT count(DISTINCT claimed_by) FROM window_runs)
SQL
    while read -r ran due missed duplicates p50 p99 max claimers; do
        echo "$jobs jobs @every 10s, $replicas replicas, ${seconds} s from $start:"
        echo "  slots run: $ran of $due due ($((ran / seconds)) fires/s held of $((due / seconds)); $missed recorded missed)"
        echo "  schedule delay: p50 $p50 ms, p99 $p99 ms, max $max ms"
        echo "  duplicate slots: $duplicates (must be 0); replicas that claimed: $claimers"
    done
echo "  replica peak RSS (MiB): ${peaks[*]}"
grep -h -c "level=error\|level=critical" "$work"/replica-*.log | paste -sd ' ' | sed 's/^/  error lines per replica log: /'
