#!/usr/bin/env bash
# Local fuzzing for one target (the _run target of cc_fuzz_test). Build with --config=fuzz.
# usage: run_fuzzer.sh NAME BINARY OPTIONS DICT|- SEED... -- [libFuzzer flags]
# The working corpus lives in fuzz/out/NAME/corpus (persistent, seeded from the checked-in corpus),
# crashes in fuzz/out/NAME/crashes.
set -euo pipefail
name="$1" bin="$2" options="$3" dict="$4"
shift 4
seeds=()
while [[ $# -gt 0 && "$1" != -* ]]; do seeds+=("$1"); shift; done
root="${BUILD_WORKSPACE_DIRECTORY:-$PWD}/fuzz/out/$name"
mkdir -p "$root/corpus" "$root/crashes"
for s in "${seeds[@]}"; do cp -n "$s" "$root/corpus/" 2>/dev/null || true; done
flags=()
while IFS='=' read -r key value; do
  key="${key// /}" value="${value## }"
  [[ -z "$key" || "$key" == \[* || "$key" == dict ]] && continue
  flags+=("-$key=$value")
done <"$options"
[[ "$dict" != "-" ]] && flags+=("-dict=$dict")
if ! "$bin" -help=1 >/dev/null 2>&1; then
  echo "$bin is not a libFuzzer binary: build with --config=fuzz" >&2
  exit 2
fi
exec "$bin" "${flags[@]}" -artifact_prefix="$root/crashes/" "$@" "$root/corpus"
