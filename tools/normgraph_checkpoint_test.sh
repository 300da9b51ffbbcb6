#!/usr/bin/env bash
# The main job on real checkpoint layouts, written in Hugging Face's layouts by
# normgraph_test_checkpoints: model directories (config.json + one file or shards with
# model.safetensors.index.json), nested text models under a prefix, full checkpoints whose non-norm
# tensors are ignored and listed, NaN weights, bad update checkpoints (refused before the run, the
# model unchanged), dtype conversions, relative paths under `bazel run`, and concurrent runs.
set -uo pipefail
bin="$TEST_SRCDIR/normgraph/tools/normgraph"
gen="$TEST_SRCDIR/normgraph/tools/normgraph_test_checkpoints"
[[ -x "$bin" ]] || bin="$(dirname "$0")/normgraph"
[[ -x "$gen" ]] || gen="$(dirname "$0")/normgraph_test_checkpoints"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"  # absolute: tests cd elsewhere
gen="$(cd "$(dirname "$gen")" && pwd)/$(basename "$gen")"  # absolute: tests cd elsewhere
export TMPDIR="${TEST_TMPDIR:-$(mktemp -d)}"
tmp="$TMPDIR"
run=(--buckets=1,2 --cycles=2 --replays_per_cycle=2)

fail() { echo "FAIL: $*" >&2; exit 1; }
make() { "$gen" "$@" >/dev/null || fail "normgraph_test_checkpoints $*"; }

# expect RC PATTERN ARGS...: exit code RC and PATTERN (grep -E) in stdout+stderr; sets $out.
expect() {
  local want="$1" pattern="$2"
  shift 2
  out=$(timeout 300 "$bin" "$@" 2>&1)
  local rc=$?
  [[ $rc == "$want" ]] || fail "normgraph $*: exit $rc, expected $want: $out"
  grep -qE -- "$pattern" <<<"$out" || fail "normgraph $*: no /$pattern/ in: $out"
}

# A Qwen3.5 model directory, one file, with embeddings, projections and lm_head: --model_dir takes
# the sizes from config.json and ignores (and lists) the non-norm tensors.
make --out="$tmp/qwen" --model=qwen3_5 --layers=4 --hidden=48
expect 0 "^verdict: every replay equal to eager" --model_dir="$tmp/qwen" "${run[@]}"
grep -q "^normgraph: qwen3_5 (4 layers, hidden 48, bf16) from $tmp/qwen/config.json" <<<"$out" \
  || fail "sizes not from config.json: $out"
grep -q "^checkpoint: file $tmp/qwen/model.safetensors (1 file, 24 tensors): 14 norm weights; ignored 10 tensors: model.layers.\*.mlp.down_proj.weight (x4), model.layers.\*.mlp.up_proj.weight (x4), lm_head.weight, model.embed_tokens.weight" <<<"$out" \
  || fail "checkpoint line: $out"
# The same file given alone is strict by default; --ignore_unexpected lets it load.
expect 2 "10 tensors the model has no parameter for \(--ignore_unexpected skips and lists them\)" \
  --checkpoint="$tmp/qwen/model.safetensors" --layers=4 --hidden=48 "${run[@]}"
grep -q "1 problem; no weight was changed" <<<"$out" || fail "unchanged: $out"
expect 0 "^verdict: every replay equal" --checkpoint="$tmp/qwen/model.safetensors" \
  --ignore_unexpected --layers=4 --hidden=48 "${run[@]}"
expect 2 "no parameter for" --model_dir="$tmp/qwen" --noignore_unexpected "${run[@]}"
# --model_dir takes a directory, and says so for a file or nothing there.
expect 2 "--model_dir=$tmp/qwen/config.json: .*not a directory \(a model directory holds" \
  --model_dir="$tmp/qwen/config.json" "${run[@]}"
expect 2 "--model_dir=$tmp/nothing_here: .*no such directory" --model_dir="$tmp/nothing_here" "${run[@]}"
# Sizes that do not match: the message points at config.json.
expect 2 "exists: --model_dir=$tmp/qwen takes the model's sizes from it" \
  --checkpoint="$tmp/qwen" --layers=4 "${run[@]}"
grep -q "model.norm.weight: shape \[48\] does not match the parameter's \[4096\]" <<<"$out" \
  || fail "shape message: $out"
# A conversion is reported.
expect 0 "14 to convert BF16 -> F32" --model_dir="$tmp/qwen" --dtype=f32 "${run[@]}"
grep -q "loaded 14 tensors, 14 converted BF16 -> F32" <<<"$out" || fail "conversion: $out"

# Sharded: the directory, or its index, with the multi-token-prediction layer Qwen checkpoints have.
make --out="$tmp/qwen_sharded" --model=qwen3_5 --layers=6 --hidden=40 --shard_bytes=1500 --mtp
ls "$tmp/qwen_sharded"/model-00001-of-*.safetensors >/dev/null || fail "no shards written"
expect 0 "^verdict: every replay equal" --model_dir="$tmp/qwen_sharded" "${run[@]}"
grep -qE "^checkpoint: sharded $tmp/qwen_sharded/model.safetensors.index.json \([0-9]+ shards, [0-9]+ tensors\): 20 norm weights; ignored" <<<"$out" \
  || fail "sharded line: $out"
grep -q "mtp.layers.\*.input_layernorm.weight" <<<"$out" || fail "mtp not listed as ignored: $out"
expect 0 "^verdict: every replay equal" "${run[@]}" --layers=6 --hidden=40 \
  --checkpoint="$tmp/qwen_sharded/model.safetensors.index.json"
json=$("$bin" --model_dir="$tmp/qwen_sharded" "${run[@]}" --json 2>/dev/null) || fail "json exited $?"
python3 - "$json" <<'EOF' || fail "sharded json: $json"
import json, sys
j = json.loads(sys.argv[1])
c = j["checkpoint"]
assert c["kind"] == "sharded" and c["shards"] > 1 and len(c["files"]) == c["shards"], c
assert c["prefix"] == "model." and c["prefix_detected"] and c["ignore_unexpected"], c
assert c["loaded"] == 20 and c["ignored_count"] == len(c["ignored"]) > 0, c
assert c["config_json"].endswith("/config.json"), c
assert j["config"]["model_type"] == "qwen3_5_text" and j["config"]["num_hidden_layers"] == 6, j
assert j["config"]["full_attention_layers"] == 1, j["config"]
EOF

# A multimodal Gemma3 checkpoint: the text model under model.language_model., a vision tower, sharded.
make --out="$tmp/gemma_mm" --model=gemma3 --layers=3 --hidden=32 --nested --vision --shard_bytes=1200
expect 0 "^verdict: every replay equal" --model_dir="$tmp/gemma_mm" "${run[@]}"
grep -q "norm weights under prefix 'model.language_model.'" <<<"$out" || fail "prefix: $out"
grep -q "^normgraph: gemma3 (3 layers, hidden 32, bf16)" <<<"$out" || fail "gemma sizes: $out"
expect 0 "^verdict: every replay equal" --model_dir="$tmp/gemma_mm" --prefix=model.language_model \
  "${run[@]}"
expect 2 "missing from the checkpoint \(looked for them under 'language_model.model.'\)" \
  --model_dir="$tmp/gemma_mm" --prefix=language_model.model. "${run[@]}"
# An older multimodal layout (language_model.model.) is detected too.
make --out="$tmp/gemma_old" --model=gemma3 --layers=2 --hidden=32 --nested --prefix=language_model.model.
expect 0 "under prefix 'language_model.model.'" --model_dir="$tmp/gemma_old" "${run[@]}"

# Broken inputs: refused up front with exit 2, and nothing changed.
make --out="$tmp/nan" --model=gemma3 --layers=2 --hidden=32 --nan=model.layers.1.input_layernorm.weight
expect 2 "model.layers.1.input_layernorm.weight: 1 of 32 values are NaN or infinite" \
  --model_dir="$tmp/nan" "${run[@]}"
grep -q "1 problem; no weight was changed" <<<"$out" || fail "NaN: $out"
out=$("$bin" --model_dir="$tmp/nan" --nocheck_finite "${run[@]}" 2>&1); rc=$?
[[ $rc != 2 ]] || fail "--nocheck_finite still refused: $out"
mkdir -p "$tmp/noconfig" && cp "$tmp/qwen/model.safetensors" "$tmp/noconfig/"
expect 2 "--model_dir=$tmp/noconfig: no config.json \(looked at $tmp/noconfig/config.json\)" \
  --model_dir="$tmp/noconfig" "${run[@]}"
mkdir -p "$tmp/empty"
expect 2 "--model_dir=$tmp/empty: checkpoint $tmp/empty: no checkpoint in this directory" \
  --model_dir="$tmp/empty" "${run[@]}"
# A bad update checkpoint is found before the run, and the message says the model is unchanged.
cp "$tmp/qwen/model.safetensors" "$tmp/truncated.safetensors"
truncate -s 100 "$tmp/truncated.safetensors"
expect 2 "--update_checkpoint=$tmp/truncated.safetensors: safetensors .*; no weight was changed" \
  --model_dir="$tmp/qwen" --update_checkpoint="$tmp/truncated.safetensors" "${run[@]}"
grep -q "cycle 1/" <<<"$out" && fail "the run started before the update checkpoint was checked: $out"
expect 2 "--update_checkpoint=.*problems?; no weight was changed" \
  --model_dir="$tmp/qwen" --update_checkpoint="$tmp/gemma_mm" "${run[@]}"
# A shard the index names is missing: the message says where it looked.
cp -r "$tmp/qwen_sharded" "$tmp/qwen_missing"
rm "$tmp/qwen_missing/model-00002-of-"*.safetensors
expect 2 "names shard 'model-00002-of-[0-9]+.safetensors', which is missing \(looked at $tmp/qwen_missing/model-00002-of-" \
  --model_dir="$tmp/qwen_missing" "${run[@]}"

# A -> B -> A swaps between a model directory and a sharded checkpoint of the same model.
make --out="$tmp/qwen_b" --model=qwen3_5 --layers=4 --hidden=48 --seed=7 --shard_bytes=1000
expect 0 "^verdict: every replay equal" --model_dir="$tmp/qwen" --update_checkpoint="$tmp/qwen_b" \
  --buckets=1,2 --cycles=3 --replays_per_cycle=2
grep -q "^update checkpoint: sharded " <<<"$out" || fail "update line: $out"

# Relative paths: against BUILD_WORKING_DIRECTORY (where `bazel run` was started), and the message
# says where it looked.
(cd / && BUILD_WORKING_DIRECTORY="$tmp" "$bin" --model_dir=qwen "${run[@]}" >"$tmp/rel.txt" 2>&1) \
  || fail "relative --model_dir under BUILD_WORKING_DIRECTORY: $(cat "$tmp/rel.txt")"
grep -q "from $tmp/qwen/config.json" "$tmp/rel.txt" || fail "relative path: $(cat "$tmp/rel.txt")"
out=$(cd / && BUILD_WORKING_DIRECTORY="$tmp" "$bin" --checkpoint=missing/x.safetensors "${run[@]}" 2>&1)
grep -q "resolved to $tmp/missing/x.safetensors against BUILD_WORKING_DIRECTORY ($tmp), the directory bazel run was started in" <<<"$out" \
  || fail "relative path message: $out"
out=$(cd "$tmp" && "$bin" --checkpoint=./qwen/model.safetensors --ignore_unexpected --layers=4 \
      --hidden=48 "${run[@]}" 2>&1) || fail "relative to the current directory: $out"
(cd / && BUILD_WORKING_DIRECTORY="$tmp" "$bin" --layers=2 --hidden=32 "${run[@]}" \
   --save_checkpoint=saved.safetensors >/dev/null 2>&1) || fail "relative --save_checkpoint"
[[ -s "$tmp/saved.safetensors" ]] || fail "--save_checkpoint not resolved against BUILD_WORKING_DIRECTORY"
# A directory, or a folder that does not exist, is refused before the run.
expect 2 "--save_checkpoint=$tmp is a directory; give the path of a file" --layers=2 --hidden=32 \
  "${run[@]}" --save_checkpoint="$tmp"
expect 2 "--save_checkpoint=$tmp/nowhere/x.safetensors: its folder $tmp/nowhere/ does not exist" \
  --layers=2 --hidden=32 "${run[@]}" --save_checkpoint="$tmp/nowhere/x.safetensors"
# Saving over the checkpoint the run updates from is refused, and the file stays as it was.
before=$(md5sum <"$tmp/saved.safetensors")
expect 2 "--save_checkpoint=$tmp/saved.safetensors is a file of the --update_checkpoint" \
  --layers=2 --hidden=32 "${run[@]}" --update_checkpoint="$tmp/saved.safetensors" \
  --save_checkpoint="$tmp/saved.safetensors"
[[ "$(md5sum <"$tmp/saved.safetensors")" == "$before" ]] || fail "the update checkpoint changed"
# So is saving over a sharded update's index, or into the directory an update is read from.
index="$tmp/qwen_b/model.safetensors.index.json"
before=$(md5sum <"$index")
expect 2 "is a file of the --update_checkpoint \($index\)" --layers=4 --hidden=48 "${run[@]}" \
  --update_checkpoint="$index" --save_checkpoint="$index"
expect 2 "is in the --update_checkpoint directory $tmp/qwen_b" --layers=4 --hidden=48 \
  "${run[@]}" --update_checkpoint="$tmp/qwen_b" --save_checkpoint="$tmp/qwen_b/model.safetensors"
expect 2 "is in the --update_checkpoint directory $tmp/qwen_b" --layers=4 --hidden=48 \
  "${run[@]}" --update_checkpoint="$index" --save_checkpoint="$tmp/qwen_b/model.safetensors"
[[ "$(md5sum <"$index")" == "$before" && ! -e "$tmp/qwen_b/model.safetensors" ]] \
  || fail "the sharded update checkpoint changed"
# A .json path would be read back as an index: refused before anything is written.
expect 2 "--save_checkpoint=$tmp/x.json: a .json path is read as a sharded checkpoint's index" \
  --layers=2 --hidden=32 "${run[@]}" --save_checkpoint="$tmp/x.json"
[[ ! -e "$tmp/x.json" ]] || fail "--save_checkpoint=x.json wrote the file"
# --prefix with only --update_checkpoint names the update's prefix: the synthetic first checkpoint
# keeps Hugging Face's model. names.
mkdir -p "$tmp/vl"
make --out="$tmp/vl" --model=gemma3 --layers=2 --hidden=32 --prefix=model.language_model.
expect 0 "^verdict: every replay equal" --model=gemma3 --layers=2 --hidden=32 "${run[@]}" \
  --update_checkpoint="$tmp/vl" --prefix=model.language_model.
# --model_dir with --checkpoint needs only the directory's config.json.
mkdir -p "$tmp/config_only"
cp "$tmp/qwen/config.json" "$tmp/config_only/"
expect 0 "^verdict: every replay equal" --model_dir="$tmp/config_only" \
  --checkpoint="$tmp/qwen/model.safetensors" --ignore_unexpected "${run[@]}"

# Concurrent runs with synthetic checkpoints: unique temporary files, nothing left behind.
conc="$tmp/concurrent"
mkdir -p "$conc"
pids=()
for seed in 1 2 3 4; do
  TMPDIR="$conc" "$bin" --layers=3 --hidden=40 --seed=$seed "${run[@]}" --json \
    >"$tmp/conc_$seed.json" 2>/dev/null &
  pids+=($!)
done
for i in 0 1 2 3; do wait "${pids[$i]}" || fail "concurrent run $((i + 1)) exited $?"; done
python3 - "$tmp"/conc_*.json <<'EOF' || fail "concurrent runs"
import json, sys
paths = set()
for f in sys.argv[1:]:
    j = json.load(open(f))
    assert j["ok"], (f, j.get("error"))
    paths.add(j["checkpoint"]["path"])
assert len(paths) == 4, paths
EOF
leftover=$(ls "$conc")
[[ -z "$leftover" ]] || fail "temporary files left behind: $leftover"
# An unwritable TMPDIR is a clear error.
TMPDIR=/nonexistent/dir expect 2 "cannot create a temporary file in /nonexistent/dir \(\\\$TMPDIR\)" \
  --layers=2 --hidden=32 "${run[@]}"

echo PASS
