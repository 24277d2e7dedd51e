#!/usr/bin/env bash
# Benchmark: `promoter packages import` of LINES package files (default 1,000,000)
# into a feed, on a throwaway PostgreSQL cluster (durable: fsync on) and on SQLite.
# Reports wall-clock seconds and files per second; asserts nothing about speed.
#
#   benches/import.sh [LINES]        PROFILE=dev benches/import.sh   (skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
profile=${PROFILE:-release}

cargo build --quiet --profile "$profile"
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
binary="$target_dir/$([ "$profile" = dev ] && echo debug || echo "$profile")/promoter"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One package version per line, three qualifiers per version on average.
awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++)
    printf "{\"package\":\"@bench/pkg%d\",\"version\":\"1.%d.0\",\"qualifier\":\"file=%d.tgz\",\"size\":%d}\n",
           int(i / 30), int(i / 3) % 10, i % 3, i }' >"$work/packages.jsonl"
echo "generated $lines lines ($(du -h "$work/packages.jsonl" | cut -f1))"

server=$(PROMOTER_PG_DURABLE=1 bash scripts/throwaway-postgres.sh $$)
for url in "$server" "sqlite://$work/bench.db?mode=rwc"; do
    backend=${url%%:*}
    export PROMOTER_DATABASE_URL=$url
    "$binary" feeds create bench --type npm >/dev/null
    start=$(date +%s.%N)
    "$binary" packages import --feed bench "$work/packages.jsonl"
    end=$(date +%s.%N)
    awk -v b="$backend" -v s="$start" -v e="$end" -v n="$lines" \
        'BEGIN { printf "%s: %d files in %.1f s (%.0f files/s)\n", b, n, e - s, n / (e - s) }'
done
