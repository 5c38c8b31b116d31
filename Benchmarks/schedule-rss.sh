#!/usr/bin/env bash
# Memory of a long-running `runner schedule`: the repository's jobs.yaml (the four agent jobs,
# on the demo's sample data) plus a job that fires every second, until FIRES fires (default
# 2,000, about 34 minutes). Prints the resident set (VmRSS) after the first 100 fires and at
# every quarter, so growth shows, and the peak (VmHWM).
set -euo pipefail
cd "$(dirname "$0")/.."
fires=${FIRES:-2000}
source Benchmarks/embedded-postgres.sh rss
# The agents' sample tables, so their own slots (every 30 minutes) do real work.
"$bin" demo >/dev/null
{
    cat jobs.yaml
    cat <<'YAML'
  every-second:
    command: ["true"]
    schedule: "* * * * * *"
    overlap: allow
YAML
} >"$work/jobs.yaml"
export RUNNER_CONFIG=$work/jobs.yaml
"$bin" check >/dev/null

"$bin" schedule >"$work/schedule.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; "$bin" db stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
marks=(100 $((fires / 4)) $((fires / 2)) $((3 * fires / 4)) "$fires")
for mark in "${marks[@]}"; do
    while [ "$("$psql_bin" "$url" -Atc "SELECT count(*) FROM runner.runs WHERE job = 'every-second' AND trigger = 'schedule'")" -lt "$mark" ]; do
        sleep 1
    done
    # RssAnon is the heap and stacks; RssFile the mapped code and data of the binary and its
    # libraries, clean pages shared by every runner process on the host.
    echo "after $mark fires: VmRSS $(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' /proc/$pid/status) MiB" \
        "(anonymous $(awk '/RssAnon/ { printf "%.1f", $2 / 1024 }' /proc/$pid/status) MiB," \
        "file-backed $(awk '/RssFile/ { printf "%.1f", $2 / 1024 }' /proc/$pid/status) MiB)"
done
echo "peak (VmHWM) over $fires fires: $(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' /proc/$pid/status) MiB (goal: idle under 35 MB)"
"$psql_bin" "$url" -At -F ' ' -c "SELECT job, status, count(*) FROM runner.runs GROUP BY 1, 2 ORDER BY 1, 2" |
    sed 's/^/  runs: /'
kill -TERM "$pid"
wait "$pid" || true
