#!/usr/bin/env bash
# Smoke test of the main job on a small stack: the correct loader replays equal to eager under every
# checked policy; the injected pre-fix loader is shown by unchecked, refused by fail, and repaired
# by recapture and rebind; --json is machine-readable; bad flags exit 2.
set -euo pipefail
bin="$TEST_SRCDIR/normgraph/tools/normgraph"
[[ -x "$bin" ]] || bin="$(dirname "$0")/normgraph"
small=(--layers=4 --hidden=48 --buckets=1,2,4,8 --cycles=2 --replays_per_cycle=3
       --checkpoint= --seed=3)
export TMPDIR="${TEST_TMPDIR:-/tmp}"
tmp="$TMPDIR"

fail() { echo "FAIL: $*" >&2; exit 1; }

for model in qwen3_5 gemma3; do
  for policy in fail recapture rebind; do
    out=$("$bin" "${small[@]}" --model=$model --policy=$policy) || fail "$model/$policy exited $?"
    grep -q "every replay equal to eager, bit for bit" <<<"$out" || fail "$model/$policy: $out"
    grep -q "0 MISMATCHED, 0 refused" <<<"$out" || fail "$model/$policy counts: $out"
  done
done

out=$("$bin" "${small[@]}" --inject=legacy-loader) || fail "legacy-loader exited $?"
grep -q "unchecked  replays silently read the old gemma_weight" <<<"$out" || fail "unchecked: $out"
grep -q "fail       every affected replay refused" <<<"$out" || fail "fail: $out"
grep -q "recapture  every replay equal to eager" <<<"$out" || fail "recapture: $out"
grep -q "rebind     every replay equal to eager" <<<"$out" || fail "rebind: $out"
grep -q "model.layers.0.input_layernorm.gemma_weight: moved from storage" <<<"$out" \
  || fail "refusal does not name the moved buffer: $out"

# Checkpoint swaps A -> B -> A through real files.
"$bin" "${small[@]}" --model=gemma3 --cycles=1 --checkpoint= >/dev/null
a="$tmp/normgraph_synthetic_gemma3_bf16.safetensors"
cp "$a" "$tmp/a.safetensors"
"$bin" "${small[@]}" --model=gemma3 --cycles=1 --seed=9 >/dev/null
cp "$a" "$tmp/b.safetensors"
out=$("$bin" "${small[@]}" --model=gemma3 --checkpoint="$tmp/a.safetensors" \
      --update_checkpoint="$tmp/b.safetensors" --cycles=3) || fail "swap exited $?"
grep -q "every replay equal to eager" <<<"$out" || fail "swap: $out"

json=$("$bin" "${small[@]}" --json 2>/dev/null) || fail "json exited $?"
grep -q '"ok": true' <<<"$json" || fail "json: $json"
grep -q '"check_share_of_replay"' <<<"$json" || fail "json fields: $json"

set +e
"$bin" --policy=sometimes >/dev/null 2>&1; rc=$?
[[ $rc == 2 ]] || fail "bad --policy exited $rc"
"$bin" --buckets=0 >/dev/null 2>&1; rc=$?
[[ $rc == 2 ]] || fail "bad --buckets exited $rc"
"$bin" --help >/dev/null 2>&1
echo PASS
