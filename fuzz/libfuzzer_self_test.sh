#!/usr/bin/env bash
# The self-test with libFuzzer itself (build with --config=fuzz; .ci/run does): from an empty corpus
# and a fixed seed, graph_replay_fuzzer must find the pre-fix loader under the unchecked policy, and
# the stale derived buffer with the freshness check off, each within a bounded number of runs.
set -euo pipefail
bin="$1"
budget=20000
help=$("$bin" -help=1 2>&1 || true)
if ! grep -q "Usage:" <<<"$help"; then
  echo "$bin is not a libFuzzer binary: run with --config=fuzz" >&2
  exit 1
fi
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
for mode in unchecked-legacy no-freshness; do
  runs=()
  for seed in 1 2 3 4 5; do
    rm -rf "$tmp/empty" && mkdir -p "$tmp/empty"
    set +e
    out=$(NORMGRAPH_FUZZ_MODE=$mode "$bin" -seed=$seed -runs=$budget -print_final_stats=1 \
          -artifact_prefix="$tmp/" "$tmp/empty" 2>&1)
    rc=$?
    set -e
    if [[ $rc == 0 ]] || ! grep -q "oracle: silent mismatch" <<<"$out"; then
      echo "FAIL: mode $mode seed $seed: nothing found in $budget runs" >&2
      exit 1
    fi
    runs+=("$(grep -o 'stat::number_of_executed_units: [0-9]*' <<<"$out" | grep -o '[0-9]*$')")
  done
  sorted=$(printf '%s\n' "${runs[@]}" | sort -n | tr '\n' ' ')
  echo "$mode: found in every seed; runs to the finding: $sorted(median $(printf '%s\n' "${runs[@]}" | sort -n | sed -n 3p))"
done
