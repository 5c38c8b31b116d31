# Sourced by the benchmark scripts (from the repository root): builds the release `runner` and
# gives it a throwaway embedded PostgreSQL, migrated. Sets `bin`, `work`, `url` and `psql_bin`,
# exports RUNNER_HOME and DATABASE_URL, and stops the server and removes `work` on exit.
# $1 names the benchmark (for the folder under /tmp). Also defines median_ms: the median wall time
# of a command over $runs runs, in milliseconds.
# RUNNER_BIN: measure that binary instead (for example one built with --static-swift-stdlib).
if [ -n "${RUNNER_BIN:-}" ]; then
    bin=$RUNNER_BIN
else
    swift build -c release --product runner >/dev/null
    bin=$PWD/.build/release/runner
fi
work=$(mktemp -d "/tmp/runner-$1-bench.XXXXXX")
export RUNNER_HOME=$work/home
trap '"$bin" db stop >/dev/null 2>&1 || true; [ -n "${KEEP_WORK:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT
url=$(env -u DATABASE_URL "$bin" db url 2>/dev/null)
export DATABASE_URL=$url
"$bin" migrate >/dev/null
psql_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)/psql
[ -x "$psql_bin" ] || psql_bin=psql

median_ms() {
    local -a times=()
    for _ in $(seq "$runs"); do
        local start end
        start=$(date +%s%N)
        "$@" >/dev/null 2>&1
        end=$(date +%s%N)
        times+=($(((end - start) / 1000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] / 1000 }'
}

# The schedule delay (metric schedule_delay_ms) of the runs matching $1 (a condition on r, the
# run): prints "count p50 p99 max" in milliseconds.
delay_stats() {
    "$psql_bin" "$url" -At -F ' ' -c "
        SELECT count(*),
               round(percentile_cont(0.5) WITHIN GROUP (ORDER BY m.value)::numeric, 1),
               round(percentile_cont(0.99) WITHIN GROUP (ORDER BY m.value)::numeric, 1),
               round(max(m.value)::numeric, 1)
        FROM runner.metrics m JOIN runner.runs r ON r.id = m.run_id
        WHERE m.name = 'schedule_delay_ms' AND $1"
}
