#!/usr/bin/env bash
# Schedule delay of an every-second job while the status page is flooded (issue 26): 40 noisy
# jobs (8 KiB of output every 5 s) beside it, SECONDS_QUIET (default 30) without HTTP traffic,
# then SECONDS_FLOOD (default 30) with CLIENTS (default 20) clients reading `GET /` in a loop.
# Prints the delay's p50/p99/max in each phase, the slots missed or skipped, the pages served
# and the scheduler's resident set. Uses the embedded PostgreSQL in a throwaway RUNNER_HOME.
set -euo pipefail
cd "$(dirname "$0")/.."
quiet=${SECONDS_QUIET:-30}
flood=${SECONDS_FLOOD:-30}
clients=${CLIENTS:-20}
source Benchmarks/embedded-postgres.sh pageflood
{
    echo "jobs:"
    echo "  tick: {command: [\"true\"], schedule: \"* * * * * *\", overlap: allow}"
    for i in $(seq 0 39); do
        echo "  noisy$i: {command: [sh, -c, 'head -c 8192 /dev/zero | tr \"\\\\0\" x'], schedule: \"*/5 * * * * *\"}"
    done
} >"$work/jobs.yaml"
export RUNNER_CONFIG=$work/jobs.yaml
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" schedule --http "127.0.0.1:$port" >"$work/schedule.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; "$bin" db stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
until curl -s -o /dev/null "http://127.0.0.1:$port/health"; do sleep 0.5; done
# Let the noisy jobs fill their history first.
sleep 10
t0=$("$psql_bin" "$url" -Atc "SELECT now()")
sleep "$quiet"
t1=$("$psql_bin" "$url" -Atc "SELECT now()")
report=$(python3 Tests/Servers/http_flood.py 127.0.0.1 "$port" --get-clients "$clients" --seconds "$flood")
t2=$("$psql_bin" "$url" -Atc "SELECT now()")
rss=$(awk '/VmRSS/ { print $2 }' /proc/$pid/status)
hwm=$(awk '/VmHWM/ { print $2 }' /proc/$pid/status)
sleep 2
phase() {
    delay_stats "r.job = 'tick' AND r.slot >= '$1' AND r.slot < '$2'" |
        while read -r count p50 p99 max; do
            lost=$("$psql_bin" "$url" -Atc "SELECT count(*) FROM runner.runs
                WHERE job = 'tick' AND status IN ('missed', 'skipped') AND slot >= '$1' AND slot < '$2'")
            echo "$3: $count fires of tick, delay p50 $p50 ms, p99 $p99 ms, max $max ms; $lost missed or skipped"
        done
}
phase "$t0" "$t1" "quiet ($quiet s)"
phase "$t1" "$t2" "page flood ($clients clients, $flood s)"
echo "flood: $report"
echo "scheduler RSS after the flood: $((rss / 1024)) MiB (peak $((hwm / 1024)) MiB)"
