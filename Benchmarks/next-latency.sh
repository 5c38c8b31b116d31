#!/usr/bin/env bash
# How long `runner next` takes from process start to exit, for common and rare expressions.
# Prints the median and worst of N runs per expression, in milliseconds, for a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-30}
swift build -c release --product runner >/dev/null
bin=.build/release/runner

now_ns() { date +%s%N; }
measure() {
    local -a times=()
    for _ in $(seq "$runs"); do
        local start end
        start=$(now_ns)
        "$bin" "$@" >/dev/null
        end=$(now_ns)
        times+=($(((end - start) / 1000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v label="$*" '
        { v[NR] = $1 } END { printf "%-75s median %6.2f ms  max %6.2f ms\n", label, v[int((NR + 1) / 2)] / 1000, v[NR] / 1000 }'
}

echo "runner next, $runs runs each (process start to exit):"
measure --version
measure next --schedule "*/30 * * * *" --count 1
measure next --schedule "0 16 * * FRI" --timezone Europe/London --count 5
measure next --schedule "0 0 29 2 *" --after 2026-03-01T00:00:00Z --count 1
measure next --schedule "0 0 29 2 MON" --after 2026-03-01T00:00:00Z --count 1
measure next --schedule "0 0 31 12 SUN" --timezone Australia/Lord_Howe --count 3
measure next --schedule "*/7 3 13 * FRI" --timezone America/New_York --count 20
measure next --schedule "@every 90s" --count 5
