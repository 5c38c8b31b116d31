#!/usr/bin/env bash
# Schedule delay of `runner schedule`: from each slot's instant to its claim (the metric
# schedule_delay_ms, on the database's clock), over FIRES fires (default 300) of a job that
# fires every second, plus the scheduler's peak RSS. Uses the embedded PostgreSQL in a
# throwaway RUNNER_HOME; prints p50, p99 and max in milliseconds.
set -euo pipefail
cd "$(dirname "$0")/.."
fires=${FIRES:-300}
source Benchmarks/embedded-postgres.sh schedule
cat >"$work/jobs.yaml" <<'YAML'
jobs:
  second:
    command: ["true"]
    schedule: "* * * * * *"
    overlap: allow
YAML
export RUNNER_CONFIG=$work/jobs.yaml

started=$("$psql_bin" "$url" -Atc "SELECT now()")
"$bin" schedule >"$work/schedule.log" 2>&1 &
pid=$!
peak=0
# A slot that began before the scheduler started (by under a second it is still run as
# scheduled) is a start-up fire: its lateness is the start's, so the figures leave it out.
while :; do
    done_fires=$("$psql_bin" "$url" -Atc "SELECT count(*) FROM runner.runs WHERE trigger = 'schedule'")
    rss=$(awk '/VmHWM/ { print $2 }' /proc/$pid/status 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss
    [ "$done_fires" -ge "$fires" ] && break
    sleep 2
done
kill -TERM "$pid"
wait "$pid" || true
delay_stats "r.trigger = 'schedule' AND r.slot > '$started'" |
    while read -r count p50 p99 max; do
        echo "schedule delay over $count fires of a every-second job: p50 $p50 ms, p99 $p99 ms, max $max ms (goal p99 < 20, max < 100)"
    done
echo "the slowest fires (slot, delay ms, trigger), the start-up one included:"
"$psql_bin" "$url" -At -F ' ' -c "
    SELECT r.slot, m.value, r.trigger FROM runner.metrics m JOIN runner.runs r ON r.id = m.run_id
    WHERE m.name = 'schedule_delay_ms' ORDER BY m.value DESC LIMIT 3" | sed 's/^/  /'
echo "scheduler peak RSS: $((peak / 1024)) MiB"
