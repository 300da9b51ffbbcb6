#!/usr/bin/env bash
# The main job's input handling: every flag validated up front with the valid values named, exit
# code 2 for every kind of bad input (0 ok, 1 check failed, 3 internal), --help / -h exit 0,
# --version, sizes refused before anything is allocated (RESOURCE_EXHAUSTED with the estimate),
# allocation failure a clean error, and --json complete also on error.
set -uo pipefail
bin="$TEST_SRCDIR/normgraph/tools/normgraph"
[[ -x "$bin" ]] || bin="$(dirname "$0")/normgraph"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"  # absolute: tests cd elsewhere
export TMPDIR="${TEST_TMPDIR:-$(mktemp -d)}"
small=(--layers=2 --hidden=32 --buckets=1,2 --cycles=1 --replays_per_cycle=2)

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect RC PATTERN ARGS...: exit code RC, and PATTERN (grep -E) in stdout+stderr.
expect() {
  local want="$1" pattern="$2"
  shift 2
  local out rc
  out=$(timeout 120 "$bin" "$@" 2>&1)
  rc=$?
  [[ $rc == "$want" ]] || fail "normgraph $*: exit $rc, expected $want: $out"
  grep -qE -- "$pattern" <<<"$out" || fail "normgraph $*: no /$pattern/ in: $out"
}

# Bad values are refused, not replaced by defaults, and the message says what is valid.
expect 2 "--layers=-5: expected an integer from 1 to 1024" --layers=-5
expect 2 "--layers=0: expected an integer from 1 to 1024" --layers=0
expect 2 "--layers=2147483647: expected an integer from 1 to 1024" --layers=2147483647 --hidden=64
expect 2 "--layers=100000: expected an integer from 1 to 1024" --layers=100000
expect 2 "--layers=abc: expected an integer" --layers=abc
expect 2 "--hidden=0: expected an integer from 1 to 65536" --hidden=0
expect 2 "--hidden=-64: expected an integer from 1 to 65536" --hidden=-64
expect 2 "--cycles=0: expected an integer from 1 to 100000" --cycles=0
expect 2 "--replays_per_cycle=-1: expected an integer from 1 to 10000" --replays_per_cycle=-1
expect 2 "--cycles=100000 x --replays_per_cycle=10000 is 1000000000 replays: at most 1000000" \
  --cycles=100000 --replays_per_cycle=10000
# --help and --version with --json: one JSON object holding the text.
json=$("$bin" --help --json) || fail "--help --json exited $?"
python3 -c 'import json, sys; j = json.loads(sys.stdin.read()); assert "--save_checkpoint" in j["help"], j' \
  <<<"$json" || fail "--help --json: $json"
json=$("$bin" --version --json) || fail "--version --json exited $?"
python3 -c 'import json, sys; j = json.loads(sys.stdin.read()); assert j["version"] and j["ok"], j' \
  <<<"$json" || fail "--version --json: $json"
# A flag's value spelled "json" or "nojson" is no --json flag.
out=$("$bin" --model_dir json 2>&1)
[[ $? == 2 && "${out:0:1}" != "{" ]] || fail "--model_dir json printed JSON: $out"
json=$("$bin" --json --save_checkpoint nojson --dtype=bogus 2>/dev/null)
python3 -c 'import json, sys; json.loads(sys.stdin.read())' <<<"$json" \
  || fail "--json --save_checkpoint nojson: not JSON: $json"
# --json prints one valid JSON object whatever bytes a value holds (a Latin-1 file name).
json=$("$bin" --json --dtype=$'\xff' 2>/dev/null)
[[ $? == 2 ]] || fail "--json --dtype=\\xff: exit code"
python3 -c 'import json, sys; j = json.loads(sys.stdin.read()); assert j["exit_code"] == 2, j' \
  <<<"$json" || fail "--json with a non-UTF-8 value: $json"
json=$("$bin" --json "${small[@]}" --checkpoint=$'/tmp/caf\xe9.safetensors' 2>/dev/null)
[[ $? == 2 ]] || fail "--json --checkpoint=caf\\xe9: exit code"
python3 -c 'import json, sys; j = json.loads(sys.stdin.read()); assert not j["ok"], j' \
  <<<"$json" || fail "--json with a non-UTF-8 path: $json"
expect 2 "--buckets=0: '0' is not a bucket" --buckets=0
expect 2 "bucket 2 is given twice" --buckets=1,2,2
expect 2 "'x' is not a bucket" --buckets=1,x
expect 2 "--dtype=fp8: expected bf16, f16 or f32" --dtype=fp8
expect 2 "--model=llama: expected qwen3_5 or gemma3" --model=llama
expect 2 "--policy=sometimes: expected refuse \(alias: fail\), recapture, rebind or unchecked" \
  --policy=sometimes
expect 2 "--policy=bogus: expected refuse" --inject=legacy-loader --policy=bogus
expect 2 "--inject=typo: expected none or legacy-loader" --inject=typo
expect 2 "--seed=-1: expected an integer from 0 to" --seed=-1
expect 2 "--device=tpu: expected cpu, cuda or cuda:N" --device=tpu
expect 2 "--max_memory=lots: expected auto or a size" --max_memory=lots
expect 2 "--json=maybe: expected true or false" --json=maybe
expect 2 "unexpected argument 'extra': normgraph takes only flags" "${small[@]}" extra
expect 2 "unexpected argument 'x'" "${small[@]}" -- x
expect 2 "unknown flag --layer \(did you mean --layers\?\)" --layer=3
expect 2 "--cycles needs a value" --cycles
expect 2 "--help takes no value" --help=1
expect 2 "--layers conflicts with --model_dir" --model_dir=/nonexistent --layers=2
expect 2 "--prefix names where a checkpoint keeps the text model; it needs --checkpoint" \
  "${small[@]}" --prefix=model.language_model.
# A path under ~ is expanded against $HOME, and the message says so.
HOME=/no_such_home expect 2 "resolved to /no_such_home/nope.safetensors against \\\$HOME" \
  "${small[@]}" '--checkpoint=~/nope.safetensors'
# A memory estimate names every part, the process itself included.
expect 2 "the process itself 48.0 MiB\) but 16.0 MiB is available" "${small[@]}" --max_memory=16M
# A CPU-only build says so for --device=cuda.
if ! grep -q "backends: cpu, cuda" <<<"$("$bin" --version)"; then
  expect 2 "--device=cuda: device cuda:0 is not available: this binary was built without the CUDA backend" \
    "${small[@]}" --device=cuda
fi

# Help and version exit 0; -h works; no doubled program name.
out=$("$bin" --help) || fail "--help exited $?"
grep -q "^examples:" <<<"$out" || fail "--help has no examples"
grep -q "^exit codes:" <<<"$out" || fail "--help has no exit codes"
grep -q "normgraph: normgraph:" <<<"$out" && fail "doubled prefix in --help"
out=$("$bin" -h) || fail "-h exited $?"
grep -q "^usage:" <<<"$out" || fail "-h: $out"
out=$("$bin" --version) || fail "--version exited $?"
grep -q "^normgraph: .* build, .*; backends: cpu" <<<"$out" || fail "--version: $out"
grep -q "Debug build" <<<"$out" && fail "--version: $out"

# Sizes: estimated before anything is allocated, refused with RESOURCE_EXHAUSTED and the estimate.
expect 2 "RESOURCE_EXHAUSTED: this run needs about [0-9.]+ [MG]iB \(parameters .*step buffers .*\) but 64.0 MiB is available \(--max_memory\); nothing was allocated" \
  --layers=64 --max_memory=64M
expect 2 "RESOURCE_EXHAUSTED: this run needs about [0-9.]+ [GT]iB" --layers=1024 --hidden=65536 \
  --dtype=f32 --buckets=4090,4091,4092,4093,4094,4095,4096
# Under ulimit -v the estimate uses the address space left, and an allocation that fails anyway is a
# clean error, not an abort. (Sanitizer builds reserve terabytes of address space: skipped there.)
if { (ulimit -v 1000000; "$bin" --version); } >/dev/null 2>&1; then
  out=$( (ulimit -v 600000; "$bin" --layers=256 --cycles=1 2>&1) ); rc=$?
  [[ $rc == 2 ]] || fail "ulimit -v: exit $rc: $out"
  grep -q "RESOURCE_EXHAUSTED: .*ulimit -v" <<<"$out" || fail "ulimit -v estimate: $out"
  # --max_memory overrides the estimate; the allocation then fails cleanly.
  out=$( (ulimit -v 600000; "$bin" --layers=256 --cycles=1 --max_memory=1T 2>&1) ); rc=$?
  [[ $rc == 2 ]] || fail "ulimit -v with --max_memory: exit $rc: $out"
  grep -qE "RESOURCE_EXHAUSTED: (out of memory|.*out of memory)" <<<"$out" \
    || fail "allocation failure not clean: $out"
  grep -qi "abort\|terminate called" <<<"$out" && fail "aborted: $out"
else
  echo "note: ulimit -v checks skipped (sanitizer build)"
fi

# --json: a complete object on stdout, also on error.
json=$("$bin" --layers=0 --json 2>/dev/null); rc=$?
[[ $rc == 2 ]] || fail "--json bad flag exit $rc"
python3 - "$json" <<'EOF' || fail "--json on a bad flag: $json"
import json, sys
j = json.loads(sys.argv[1])
assert j["ok"] is False and j["exit_code"] == 2, j
assert j["error"]["code"] == "INVALID_ARGUMENT" and "--layers=0" in j["error"]["message"], j
EOF
json=$("$bin" --layer=0 --json 2>/dev/null); rc=$?
[[ $rc == 2 ]] || fail "--json unknown flag exit $rc"
grep -q '"unknown flag --layer' <<<"$json" || fail "--json unknown flag: $json"
json=$("$bin" "${small[@]}" --max_memory=16M --json 2>/dev/null); rc=$?
[[ $rc == 2 ]] || fail "--json too big exit $rc"
python3 - "$json" <<'EOF' || fail "--json on a refused size: $json"
import json, sys
j = json.loads(sys.argv[1])
assert j["error"]["code"] == "RESOURCE_EXHAUSTED", j
assert j["config"]["num_hidden_layers"] == 2 and j["config"]["buckets"] == [1, 2], j
assert j["memory"]["estimate_bytes"] > j["memory"]["available_bytes"] == 16 << 20, j
EOF
# Every spelling of true the flag parser takes asks for JSON; the last --json flag wins, also when
# another flag is bad.
for spelling in --json=yes --json=on --json=TRUE -json; do
  json=$("$bin" --layers=0 "$spelling" 2>/dev/null)
  grep -q '"exit_code": 2' <<<"$json" || fail "$spelling: no JSON: $json"
done
json=$("$bin" --json --nojson --bogus 2>/dev/null)
grep -q '"exit_code"' <<<"$json" && fail "--json --nojson: JSON anyway: $json"
json=$("$bin" "${small[@]}" --checkpoint=/nonexistent/x.safetensors --json 2>/dev/null); rc=$?
[[ $rc == 2 ]] || fail "--json missing checkpoint exit $rc"
grep -q '"code": "NOT_FOUND"' <<<"$json" || fail "--json missing checkpoint: $json"

# Progress is line-buffered: while the run goes on, what has reached a file always ends with a whole
# line (block buffering would write 4 KiB chunks that end mid-line).
log="$TMPDIR/progress.log"
"$bin" --layers=2 --hidden=32 --buckets=1,2 --cycles=100000 --replays_per_cycle=1 >"$log" 2>&1 &
pid=$!
seen=0
for _ in $(seq 1 600); do
  if [[ -s "$log" ]]; then
    [[ "$(tail -c1 "$log" | od -An -c | tr -d ' ')" == '\n' ]] || { kill $pid; fail "progress ends mid-line"; }
    seen=$((seen + 1))
    [[ $seen == 5 ]] && break
  fi
  sleep 0.05
done
kill -0 $pid 2>/dev/null || fail "the long run ended early: $(cat "$log")"
kill $pid; wait $pid 2>/dev/null
[[ $seen == 5 ]] || fail "no progress within 30 s"
grep -q "^normgraph: qwen3_5 (2 layers" "$log" || fail "progress: $(head -3 "$log")"

echo PASS
