#!/usr/bin/env bash
# Smoke test of the main job on a small stack: the correct loader replays equal to eager under every
# checked policy; the injected pre-fix loader is shown by unchecked, refused by refuse, and repaired
# by recapture and rebind; the output reads at a glance (one line per cycle, scaled units, natural
# tensor order); --json is complete and machine-readable; A -> B -> A swaps through saved files.
set -euo pipefail
bin="$TEST_SRCDIR/normgraph/tools/normgraph"
[[ -x "$bin" ]] || bin="$(dirname "$0")/normgraph"
small=(--layers=4 --hidden=48 --buckets=1,2,4,8 --cycles=2 --replays_per_cycle=3 --seed=3)
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"  # absolute: tests cd elsewhere
export TMPDIR="${TEST_TMPDIR:-$(mktemp -d)}"
tmp="$TMPDIR"

fail() { echo "FAIL: $*" >&2; exit 1; }

for model in qwen3_5 gemma3; do
  for policy in refuse recapture rebind; do
    out=$("$bin" "${small[@]}" --model=$model --policy=$policy) || fail "$model/$policy exited $?"
    grep -q "^verdict: every replay equal to eager, bit for bit" <<<"$out" || fail "$model/$policy: $out"
    [[ $(grep -c "^\[$policy\] cycle ./2: update [0-9]* tensors, in place | 3 replays at batch [0-9,]*: 3 equal to eager, 0 mismatched, 0 refused | repairs: none$" <<<"$out") == 2 ]] \
      || fail "$model/$policy per-cycle lines: $out"
    grep -q "MISMATCHED\|\[fail\]" <<<"$out" && fail "old wording: $out"
  done
done
# 'fail' is still accepted, as the old name of refuse.
out=$("$bin" "${small[@]}" --policy=fail) || fail "--policy=fail exited $?"
grep -q "^\[refuse\] cycle 1/2" <<<"$out" || fail "--policy=fail: $out"

out=$("$bin" "${small[@]}" --layers=12 --inject=legacy-loader) || fail "legacy-loader exited $?"
grep -q "unchecked  replays silently read the old gemma_weight" <<<"$out" || fail "unchecked: $out"
grep -q "refuse     every affected replay refused" <<<"$out" || fail "refuse: $out"
grep -q "recapture  every replay equal to eager" <<<"$out" || fail "recapture: $out"
grep -q "rebind     every replay equal to eager" <<<"$out" || fail "rebind: $out"
grep -q "model.layers.0.input_layernorm.gemma_weight: moved from storage" <<<"$out" \
  || fail "refusal does not name the moved buffer: $out"
# The legacy loader's update is not in place, and the line says so.
grep -q "^\[unchecked\] cycle 1/2: update [0-9]* tensors, [0-9]* buffers moved to new storage" <<<"$out" \
  || fail "legacy update line: $out"
# Tensors in natural order: layers.2 before layers.10.
block=$(grep -m1 -A8 "violations by tensor" <<<"$out")
names=$(grep -o "model.layers.[0-9]*" <<<"$block" | tr '\n' ' ')
[[ "$names" == "model.layers.0 model.layers.0 model.layers.1 model.layers.1 model.layers.2 model.layers.2 model.layers.3 model.layers.3 " ]] \
  || fail "violations not in natural order: $names"
# No check time under unchecked; units scaled (no "us" figures of a million).
unchecked=$(grep -A3 "^summary \[unchecked" <<<"$out")
grep -q "no check" <<<"$unchecked" || fail "unchecked check time: $out"
grep -qE "[0-9]{5,}\.[0-9] us" <<<"$out" && fail "unscaled units: $out"
json=$("$bin" "${small[@]}" --inject=legacy-loader --json 2>/dev/null) || fail "legacy json exited $?"
python3 - "$json" <<'EOF' || fail "legacy json: $json"
import json, sys
j = json.loads(sys.argv[1])
assert j["verdict"] == "every policy as expected with the pre-fix loader injected", j["verdict"]
assert [r["policy"] for r in j["runs"]] == ["unchecked", "refuse", "recapture", "rebind"], j["runs"]
assert j["runs"][0]["mismatched"] > 0 and j["runs"][1]["refused"] > 0, j["runs"]
assert all(r["ok"] for r in j["runs"]), j["runs"]
EOF
# --inject with --policy runs just that policy.
out=$("$bin" "${small[@]}" --inject=legacy-loader --policy=rebind) || fail "legacy+rebind exited $?"
grep -q "^\[unchecked\]" <<<"$out" && fail "--policy ignored under --inject: $out"
grep -q "rebind     every replay equal to eager" <<<"$out" || fail "legacy+rebind: $out"

# Checkpoint swaps A -> B -> A through real files (--save_checkpoint keeps the synthetic one).
"$bin" "${small[@]}" --model=gemma3 --cycles=1 --save_checkpoint="$tmp/a.safetensors" >/dev/null
"$bin" "${small[@]}" --model=gemma3 --cycles=1 --seed=9 --save_checkpoint="$tmp/b.safetensors" >/dev/null
[[ -s "$tmp/a.safetensors" && -s "$tmp/b.safetensors" ]] || fail "--save_checkpoint wrote nothing"
cmp -s "$tmp/a.safetensors" "$tmp/b.safetensors" && fail "seeds 3 and 9 gave the same checkpoint"
out=$("$bin" "${small[@]}" --model=gemma3 --checkpoint="$tmp/a.safetensors" \
      --update_checkpoint="$tmp/b.safetensors" --cycles=3) || fail "swap exited $?"
grep -q "^verdict: every replay equal to eager" <<<"$out" || fail "swap: $out"
grep -q "^update checkpoint: file $tmp/b.safetensors (1 file, 25 tensors): 25 norm weights" <<<"$out" \
  || fail "swap update line: $out"

# --json: one object on stdout, progress on stderr, with the configuration, checkpoint, node count
# and verdict.
json=$("$bin" "${small[@]}" --json 2>"$tmp/progress") || fail "json exited $?"
grep -q "cycle 2/2" "$tmp/progress" || fail "progress not on stderr"
python3 - "$json" <<'EOF' || fail "json fields: $json"
import json, sys
j = json.loads(sys.argv[1])
assert j["ok"] is True and j["exit_code"] == 0 and j["error"] is None, j
assert j["verdict"] == "every replay equal to eager, bit for bit", j["verdict"]
c = j["config"]
assert c["model"] == "qwen3_5" and c["num_hidden_layers"] == 4 and c["hidden_size"] == 48, c
assert c["buckets"] == [1, 2, 4, 8] and c["policies"] == ["refuse"] and c["seed"] == 3, c
assert j["checkpoint"]["kind"] == "synthetic" and j["checkpoint"]["loaded"] == 14, j["checkpoint"]
assert j["graph"]["nodes_per_step"] == 15 and j["graph"]["nodes_total"] == 60, j["graph"]
r = j["runs"][0]
assert r["policy"] == "refuse" and r["equal_to_eager"] == 6 and len(r["cycles"]) == 2, r
assert r["cycles"][0]["batches"] and "check_share_of_replay" in r, r
# Each replay timed to its completion, which includes its check and launch.
assert r["mean_replay_completed_us"] > 0, r
assert 0 < r["check_share_of_replay"] < 1, r
# The 16 steady-state replays after the cycles: the first checked in full (the
# cycles' buffers were freed before it), the other 15 on the fast path.
assert r["graph_replays"] == 6 + 16 and r["fast_checks"] == 15, r
assert r["mean_fast_check_us"] is not None, r
assert 0 < j["peak_rss_bytes"] <= j["memory"]["estimate_bytes"], j["memory"]
EOF
echo PASS
