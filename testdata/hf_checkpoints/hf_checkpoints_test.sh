#!/usr/bin/env bash
# The main job on checkpoints that transformers' own save_pretrained wrote (one file, sharded,
# multimodal with the text model under model.language_model.): --model_dir takes the model and its
# sizes from config.json, loads exactly the text model's norm weights that transformers saved (as
# listed in each folder's normgraph_expected.json), ignores the rest, and replays equal to eager.
set -uo pipefail
bin="$TEST_SRCDIR/normgraph/tools/normgraph"
here="$TEST_SRCDIR/normgraph/testdata/hf_checkpoints"
export TMPDIR="${TEST_TMPDIR:-$(mktemp -d)}"
run=(--buckets=1,2 --cycles=2 --replays_per_cycle=2)

fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -x "$bin" ]] || fail "no normgraph at $bin"

dirs=()
for d in "$here"/*/; do
  [[ -f "$d/normgraph_expected.json" ]] && dirs+=("${d%/}")
done
(( ${#dirs[@]} > 0 )) || fail "no checkpoint folders with normgraph_expected.json in $here"

for d in "${dirs[@]}"; do
  name=$(basename "$d")
  json=$("$bin" --model_dir="$d" "${run[@]}" --json 2>"$TMPDIR/$name.err"); rc=$?
  [[ $rc == 0 ]] || fail "$name: exit $rc: $json $(cat "$TMPDIR/$name.err")"
  python3 - "$d" "$json" <<'EOF' || fail "$name: $json"
import json, os, sys
folder, out = sys.argv[1], json.loads(sys.argv[2])
want = json.load(open(os.path.join(folder, "normgraph_expected.json")))
config = json.load(open(os.path.join(folder, "config.json")))
text = config.get("text_config") or config
ck, c = out["checkpoint"], out["config"]
assert out["ok"] and out["exit_code"] == 0, out.get("error")
assert ck["prefix"] == want["prefix"], (ck["prefix"], want["prefix"])
assert ck["kind"] == ("sharded" if want["sharded"] else "file"), ck["kind"]
assert ck["shards"] == len(want["files"]), (ck["shards"], want["files"])
assert ck["tensors"] == len(want["tensors"]), (ck["tensors"], len(want["tensors"]))
assert ck["loaded"] == len(want["norm_weights"]), (ck["loaded"], sorted(want["norm_weights"]))
loaded = set(want["tensors"]) - set(ck["ignored"])
assert loaded == set(want["norm_weights"]), sorted(loaded ^ set(want["norm_weights"]))
for key in ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
            "head_dim"):
    if key in text:
        assert c[key] == text[key], (key, c[key], text[key])
print(f"{os.path.basename(folder)}: {want['model_class']} ({want['transformers']}): "
      f"{ck['loaded']} norm weights under '{ck['prefix']}' from {ck['shards']} file(s), "
      f"{ck['ignored_count']} tensors ignored")
EOF
  # A full checkpoint holds more than norms: strict loading refuses it and says what to do.
  out=$("$bin" --model_dir="$d" "${run[@]}" --noignore_unexpected 2>&1); rc=$?
  [[ $rc == 2 ]] && grep -q "(--ignore_unexpected skips and lists them)" <<<"$out" \
    || fail "$name strict: exit $rc: $out"
done

# The pre-fix loader on a real checkpoint: shown, refused, repaired.
out=$("$bin" --model_dir="${dirs[0]}" "${run[@]}" --inject=legacy-loader 2>&1) \
  || fail "legacy-loader on ${dirs[0]}: $out"
grep -q "unchecked  replays silently read the old gemma_weight" <<<"$out" || fail "legacy: $out"
echo PASS
