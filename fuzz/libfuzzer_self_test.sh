#!/usr/bin/env bash
# The self-test with libFuzzer itself (build with --config=fuzz; .ci/run does): from an empty corpus,
# without dictionary or options, and a fixed seed, graph_replay_fuzzer must find every bug the
# self-test modes put back (graph_replay_harness.h) within a bounded number of runs, and each crash
# file must reproduce the same finding on its own.
#   usage: libfuzzer_self_test.sh BINARY [MODE...]   (default: every mode; SEEDS="1 2 3" to change)
set -euo pipefail
bin="$1"
shift
modes=("$@")
[[ ${#modes[@]} -gt 0 ]] || modes=(unchecked-legacy no-freshness realloc-rms-norm corrupt-load
                                   realloc-40th-load skip-refresh-50th)
seeds=(${SEEDS:-1 2 3})
budget=${BUDGET:-60000}
help=$("$bin" -help=1 2>&1 || true)
if ! grep -q "Usage:" <<<"$help"; then
  echo "$bin is not a libFuzzer binary: run with --config=fuzz" >&2
  exit 1
fi
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
for mode in "${modes[@]}"; do
  runs=()
  secs=()
  for seed in "${seeds[@]}"; do
    rm -rf "$tmp/empty" "$tmp/crash-"* && mkdir -p "$tmp/empty"
    set +e
    start=$(date +%s.%N)
    out=$(NORMGRAPH_FUZZ_MODE=$mode "$bin" -seed=$seed -runs=$budget -print_final_stats=1 \
          -artifact_prefix="$tmp/" "$tmp/empty" 2>&1)
    rc=$?
    end=$(date +%s.%N)
    set -e
    finding=$(grep -m1 "graph_replay_fuzzer: INTERNAL: oracle:" <<<"$out" || true)
    if [[ $rc == 0 || -z "$finding" ]]; then
      echo "FAIL: mode $mode seed $seed: nothing found in $budget runs" >&2
      tail -5 <<<"$out" >&2
      exit 1
    fi
    # The crash file alone reproduces the finding (storage ids and addresses aside).
    crash=$(ls "$tmp"/crash-* | head -1)
    again=$(NORMGRAPH_FUZZ_MODE=$mode "$bin" "$crash" 2>&1 | grep -m1 "graph_replay_fuzzer: INTERNAL: oracle:" || true)
    norm() { sed -E 's/#[0-9]+|@?0x[0-9a-f]+/#/g' <<<"$1"; }
    if [[ "$(norm "$finding")" != "$(norm "$again")" ]]; then
      echo "FAIL: mode $mode seed $seed: $crash does not reproduce the finding:" >&2
      echo "  found:      $finding" >&2
      echo "  reproduced: $again" >&2
      exit 1
    fi
    runs+=("$(grep -o 'stat::number_of_executed_units: [0-9]*' <<<"$out" | grep -o '[0-9]*$')")
    secs+=("$(awk "BEGIN { printf \"%.1f\", $end - $start }")")
  done
  echo "$mode: found and reproduced in every seed; runs to the finding: ${runs[*]}; seconds: ${secs[*]}"
  echo "  e.g. ${finding:0:300}"
done
