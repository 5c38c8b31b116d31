#!/usr/bin/env bash
# Median wall time of `runner once --force` for a no-op command job against a warm local
# PostgreSQL, next to `psql -c 'select 1'` on the same server in the same run.
# Uses the embedded PostgreSQL in a throwaway RUNNER_HOME; prints milliseconds.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-40}
source Benchmarks/embedded-postgres.sh once
cat >"$work/jobs.yaml" <<'YAML'
jobs:
  noop:
    command: ["true"]
    schedule: "@hourly"
YAML


# Warm both up once.
"$bin" once noop --force --config "$work/jobs.yaml" >/dev/null 2>&1
"$psql_bin" "$url" -c 'select 1' >/dev/null

psql_ms=$(median_ms "$psql_bin" "$url" -c 'select 1')
once_ms=$(median_ms "$bin" once noop --force --config "$work/jobs.yaml")
noop_ms=$(median_ms "$bin" once noop --config "$work/jobs.yaml")
echo "median of $runs runs each, same server, same run:"
echo "  psql -c 'select 1'                 ${psql_ms} ms"
echo "  runner once noop --force           ${once_ms} ms  (claim, start 'true', heartbeat, finish, metrics)"
echo "  runner once noop (slot taken)      ${noop_ms} ms  (the second call in a slot)"
awk -v r="$once_ms" -v p="$psql_ms" 'BEGIN { printf "  ratio runner/psql                  %.2fx (goal: at most 1.5x)\n", r / p }'
