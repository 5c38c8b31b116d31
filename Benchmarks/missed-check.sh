#!/usr/bin/env bash
# The cost of the missed-slot check every `runner once` makes first (one statement for the whole
# table): `runner once` on a slot already taken, with a table of 1 job and of JOBS jobs (default
# 50), each with DAYS (default 30) days of half-hourly history; and the check's statement alone
# (EXPLAIN ANALYZE, server time; the statement of Ledger.slotHistories). Prints medians in milliseconds.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-50}
days=${DAYS:-30}
runs=${RUNS:-30}
source Benchmarks/embedded-postgres.sh missed
{
    echo "jobs:"
    echo '  noop: {command: ["true"], schedule: "@hourly"}'
} >"$work/one.yaml"
{
    cat "$work/one.yaml"
    for ((i = 1; i < jobs; i++)); do printf '  j%03d: {command: ["true"], schedule: "*/30 * * * *"}\n' "$i"; done
} >"$work/many.yaml"
# History: every job ran every half hour for DAYS days, up to now (nothing is missed).
"$psql_bin" "$url" -qc "
    INSERT INTO runner.runs (namespace, job, slot, slot_key, trigger, status, claimed_by, lease_seconds, finished_at,
                             duration_ms)
    SELECT 'default', j, s, to_char(s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'once', 'succeeded', 'bench', 30, s, 5
    FROM generate_series(1, $jobs - 1) AS i, LATERAL (SELECT 'j' || lpad(i::text, 3, '0') AS j) AS name,
         generate_series(date_trunc('hour', now()) - make_interval(days => $days), now(), interval '30 minutes') AS s;
    ANALYZE runner.runs;"
"$bin" once noop --config "$work/one.yaml" >/dev/null 2>&1

one=$(median_ms "$bin" once noop --config "$work/one.yaml")
many=$(median_ms "$bin" once noop --config "$work/many.yaml")
rows=$("$psql_bin" "$url" -Atc "SELECT count(*) FROM runner.runs")
names=$(awk '/^  [a-z0-9]+:/ { sub(":", "", $1); printf "%s\x27%s\x27", (n++ ? "," : ""), $1 }' "$work/many.yaml")
query_ms=$("$psql_bin" "$url" -At <<SQL | awk '/Execution Time/ { print $3 }'
EXPLAIN (ANALYZE)
SELECT j.name,
       (SELECT slot FROM runner.runs WHERE namespace = 'default' AND job = j.name
          AND origin = 'schedule' ORDER BY slot LIMIT 1)
          AS first_slot,
       (SELECT slot FROM runner.runs WHERE namespace = 'default' AND job = j.name
          AND origin = 'schedule' ORDER BY slot DESC LIMIT 1)
          AS last_slot,
       (SELECT defined_at FROM runner.jobs WHERE namespace = 'default' AND name = j.name) AS defined_at,
       (SELECT checked_through FROM runner.jobs WHERE namespace = 'default' AND name = j.name) AS checked_through,
       (SELECT array_agg(extract(epoch FROM p.paused_at)::text || '/'
                         || coalesce(extract(epoch FROM least(p.resumed_at, p.until))::text, '') ORDER BY p.paused_at)
        FROM runner.pauses p
        WHERE p.namespace = 'default' AND p.job = j.name AND coalesce(least(p.resumed_at, p.until), 'infinity') > now() - interval '400 days') AS pauses
FROM unnest(ARRAY[$names]) AS j(name);
SQL
)
echo "runner once on a taken slot, median of $runs, $rows history rows:"
echo "  table of 1 job              ${one} ms"
echo "  table of $jobs jobs             ${many} ms  (the missed-slot check covers every job)"
echo "  the check's statement alone ${query_ms} ms (server time, $jobs jobs)"
