#!/usr/bin/env bash
# Runs each benchmark binary given on the command line for a minimal time and checks (with
# benchmark_smoke_check.py) that every benchmark it registers ran without error and reported its
# counters. Timings are never asserted.
set -euo pipefail
dir="$(dirname "$0")"
out="${TEST_TMPDIR:-$(mktemp -d)}"
for binary in "$@"; do
  name="$(basename "$binary")"
  "$binary" --benchmark_list_tests=true >"$out/$name.list"
  "$binary" --benchmark_min_time=0.001 --benchmark_format=json \
    --benchmark_out="$out/$name.json" --benchmark_out_format=json >/dev/null
  python3 "$dir/benchmark_smoke_check.py" "$name" "$out/$name.list" "$out/$name.json"
done
echo "benchmark_smoke_test: ok ($#)"
