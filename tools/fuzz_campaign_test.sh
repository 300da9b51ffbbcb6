#!/usr/bin/env bash
# The campaign runner's contract, with stand-in fuzz binaries (shell scripts that answer like
# libFuzzer) so each case is deterministic, and, where clang's libFuzzer runtime is installed, a real
# libFuzzer binary: non-libFuzzer and missing binaries are refused (exit 2); a run that executes
# nothing fails (exit 3); a crash exits 1, again as a known crash on the next run, and 0 with
# --accept-known-crashes; self-test findings are kept apart from normal ones; flags are validated;
# the run keeps to --time; progress counts the crash files while it runs; the summary JSON has the
# start, the commit, the flags and the mode.
set -uo pipefail
runner="$TEST_SRCDIR/normgraph/tools/fuzz_campaign.py"
[[ -f "$runner" ]] || runner="$(cd "$(dirname "$0")" && pwd)/fuzz_campaign.py"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
unset NORMGRAPH_FUZZ_MODE BUILD_WORKSPACE_DIRECTORY

fail() { echo "FAIL: $*" >&2; exit 1; }

# A workspace-like folder: the runner seeds from fuzz/corpus/NAME there.
ws="$tmp/ws"
mkdir -p "$ws/fuzz/corpus/safetensors_fuzzer" "$tmp/bin" "$tmp/plain"
printf 'seed' >"$ws/fuzz/corpus/safetensors_fuzzer/seed_1"
cd "$ws"

# A stand-in for a libFuzzer binary. FAKE selects what it does when fuzzing:
#   clean: runs 1000 inputs, no crash; noop: runs nothing; crash: one crash file;
#   hang: a crash file, then ignores SIGINT and -max_total_time (the runner must kill it).
cat >"$tmp/bin/safetensors_fuzzer" <<'EOF'
#!/usr/bin/env bash
prefix="" merge=0 files=()
for a in "$@"; do
  case "$a" in
    -help=1) printf 'Usage:\n\nTo run fuzzing pass 0 or more directories.\n max_total_time 0\n'; exit 0 ;;
    -merge=1) merge=1 ;;
    -artifact_prefix=*) prefix="${a#-artifact_prefix=}" ;;
    -*) ;;
    *) files+=("$a") ;;
  esac
done
if [[ $merge == 1 ]]; then cp "${files[1]}"/* "${files[0]}"/ 2>/dev/null; exit 0; fi
if [[ ${#files[@]} == 1 && -f "${files[0]}" ]]; then  # reproducing a crash file
  echo "==1==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x602"
  echo "    #0 0x4a1b2c in normgraph::FakeCrashSite() fake.cc:12"
  echo "    #1 0x4a1b3d in LLVMFuzzerTestOneInput fake.cc:20"
  exit 1
fi
case "$FAKE" in
  clean)
    echo "#500: cov: 40 ft: 60 corp: 3 exec/s 250 oom/timeout/crash: 0/0/0 time: 2s job: 1 dft_time: 0"
    echo "#1000: cov: 41 ft: 62 corp: 4 exec/s 250 oom/timeout/crash: 0/0/0 time: 4s job: 2 dft_time: 0"
    echo "stat::number_of_executed_units: 1000"; exit 0 ;;
  noop)
    echo "INFO: 1 files found"; echo "stat::number_of_executed_units: 0"; exit 0 ;;
  crash)
    echo "#100: cov: 5 ft: 5 corp: 1 exec/s 50 oom/timeout/crash: 0/0/1 time: 1s job: 1 dft_time: 0"
    printf 'FUZ' >"${prefix}crash-0123456789abcdef"
    echo "stat::number_of_executed_units: 100"; exit 77 ;;
  hang)
    trap '' INT
    echo "#10: cov: 5 ft: 5 corp: 1 exec/s 5 oom/timeout/crash: 0/0/1 time: 1s job: 1 dft_time: 0"
    printf 'FUZ' >"${prefix}crash-fedcba9876543210"
    while true; do sleep 1; done ;;
esac
EOF
chmod +x "$tmp/bin/safetensors_fuzzer"
# A plain build of a fuzz target: it replays files and knows no libFuzzer flags.
cat >"$tmp/plain/safetensors_fuzzer" <<'EOF'
#!/usr/bin/env bash
echo "replay: no inputs given (a regression test over nothing proves nothing)" >&2; exit 1
EOF
chmod +x "$tmp/plain/safetensors_fuzzer"

# campaign RC PATTERN ARGS...: exit code RC and PATTERN (grep -E) in the output; sets $out.
campaign() {
  local want="$1" pattern="$2"
  shift 2
  out=$(timeout 300 python3 "$runner" --targets=safetensors_fuzzer --fork=1 --progress=0 \
        --out="$tmp/out" "$@" 2>&1)
  local rc=$?
  [[ $rc == "$want" ]] || fail "fuzz_campaign $*: exit $rc, expected $want: $out"
  grep -qE -- "$pattern" <<<"$out" || fail "fuzz_campaign $*: no /$pattern/ in: $out"
}

# Flags are validated, with the valid values.
campaign 2 "--fork: 0 is out of range; expected 1 to 256 workers" --fork=0 --no-build
campaign 2 "--time: 0 is out of range; expected 1 to 604800 seconds" --time=0 --no-build
campaign 2 "--time: -3 is out of range" --time=-3 --no-build
campaign 2 "--time: 'soon' is not an integer" --time=soon --no-build
campaign 2 "--progress: -1 is out of range; expected 0 \(off\) or seconds" --progress=-1 --no-build
campaign 2 "unknown target bogus; valid: all, graph_replay_fuzzer, safetensors_fuzzer, cpu_kernel_fuzzer" \
  --targets=bogus --no-build
campaign 2 "invalid choice: 'sometimes'" --mode=sometimes --no-build
out=$(NORMGRAPH_FUZZ_MODE=no-freshness python3 "$runner" --mode=unchecked-legacy --bin-dir="$tmp/bin" 2>&1)
[[ $? == 2 ]] && grep -q "conflicts with NORMGRAPH_FUZZ_MODE=no-freshness" <<<"$out" \
  || fail "mode conflict: $out"
out=$(python3 "$runner" --help) || fail "--help exited $?"
grep -q "whole run" <<<"$out" || fail "--help does not say --time is for the whole run: $out"

# Missing and non-libFuzzer binaries are refused.
campaign 2 "no binary at $tmp/nowhere/safetensors_fuzzer; build it with: bazel build --config=fuzz //fuzz:safetensors_fuzzer" \
  --bin-dir="$tmp/nowhere" --time=5
campaign 2 "is not a libFuzzer binary \(the plain build only replays files\)" \
  --bin-dir="$tmp/plain" --time=5
grep -q "Traceback" <<<"$out" && fail "traceback: $out"

# A run that executes nothing fails.
FAKE=noop campaign 3 "nothing was executed by safetensors_fuzzer" --bin-dir="$tmp/bin" --time=5

# A clean run: exit 0, and a complete summary; the target's .options file (cc_fuzz_test's
# `options`) gives libFuzzer flags.
printf '[libfuzzer]\nmax_len = 77\nlen_control = 20\n' >"$tmp/bin/safetensors_fuzzer.options"
FAKE=clean campaign 0 "no crash \(exit 0\)" --bin-dir="$tmp/bin" --time=6 --json="$tmp/clean.json"
grep -q "safetensors_fuzzer: .* 1000 execs" <<<"$out" || fail "execs: $out"
grep -q " -max_len=77 -len_control=20 " <<<"$out" || fail "options file not used: $out"
python3 - "$tmp/clean.json" <<'EOF' || fail "summary json"
import json, sys
j = json.load(open(sys.argv[1]))
for k in ("started", "finished", "commit", "flags", "mode", "argv", "exit_code", "verdict", "host"):
    assert k in j, k
assert j["mode"] == "default" and j["exit_code"] == 0 and j["flags"]["time"] == 6, j
t = j["targets"][0]
assert t["execs"] == 1000 and t["coverage"] == 41 and t["crash_files"] == 0, t
EOF

# A crash: exit 1 as new; the next run reports it as known and still exits 1, unless accepted.
FAKE=crash campaign 1 "NEW CRASH: ==1==ERROR: AddressSanitizer: heap-buffer-overflow" \
  --bin-dir="$tmp/bin" --time=6
grep -q "stack: normgraph::FakeCrashSite() <- LLVMFuzzerTestOneInput" <<<"$out" || fail "stack: $out"
[[ -f "$tmp/out/safetensors_fuzzer/known_crashes.json" ]] || fail "no known_crashes.json"
FAKE=crash campaign 1 "KNOWN CRASH: ==1==ERROR" --bin-dir="$tmp/bin" --time=6
grep -q "0 new and 1 known unique crash (--accept-known-crashes exits 0 on known ones)" <<<"$out" \
  || fail "known verdict: $out"
FAKE=crash campaign 0 "no new crash; 1 known \(accepted\)" --bin-dir="$tmp/bin" --time=6 \
  --accept-known-crashes

# Self-test modes keep their findings apart: the same crash is new there, and the default mode's
# known_crashes.json is untouched.
sum=$(md5sum <"$tmp/out/safetensors_fuzzer/known_crashes.json")
FAKE=crash campaign 1 "NEW CRASH" --bin-dir="$tmp/bin" --time=6 --mode=unchecked-legacy
grep -q "reproduce: NORMGRAPH_FUZZ_MODE=unchecked-legacy " <<<"$out" || fail "repro line: $out"
[[ -f "$tmp/out/unchecked-legacy/safetensors_fuzzer/known_crashes.json" ]] || fail "mode folder"
[[ "$(md5sum <"$tmp/out/safetensors_fuzzer/known_crashes.json")" == "$sum" ]] \
  || fail "a self-test run changed the default mode's known crashes"
ls "$tmp/out/unchecked-legacy"/campaign-*.json >/dev/null || fail "mode summary not in the mode folder"

# The budget holds even when the fuzzer ignores -max_total_time and SIGINT; progress counts the
# crash file while it runs.
start=$(date +%s)
FAKE=hang campaign 1 "NEW CRASH" --bin-dir="$tmp/bin" --time=8 --progress=2 --mode=no-freshness
took=$(( $(date +%s) - start ))
(( took <= 16 )) || fail "--time=8 took $took s: $out"
grep -qE "\[safetensors_fuzzer\] +[0-9]+ s of [0-9]+ s .*crashes 1" <<<"$out" \
  || fail "progress does not count the crash file: $out"

# A real libFuzzer binary, where clang's runtime is installed.
cat >"$tmp/t.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {
  if (n >= 3 && d[0] == 'F' && d[1] == 'U' && d[2] == 'Z') abort();
  return 0;
}
EOF
mkdir -p "$tmp/real"
if command -v clang >/dev/null && \
   clang -fsanitize=fuzzer "$tmp/t.c" -o "$tmp/real/safetensors_fuzzer" 2>/dev/null; then
  rm -rf "$tmp/out_real"
  start=$(date +%s)
  out=$(python3 "$runner" --targets=safetensors_fuzzer --fork=2 --progress=0 --out="$tmp/out_real" \
        --bin-dir="$tmp/real" --time=10 2>&1); rc=$?
  took=$(( $(date +%s) - start ))
  [[ $rc == 1 ]] || fail "real libFuzzer: exit $rc: $out"
  grep -qE "safetensors_fuzzer: .* [1-9][0-9]* execs" <<<"$out" || fail "real libFuzzer execs: $out"
  grep -q "NEW CRASH" <<<"$out" || fail "real libFuzzer crash: $out"
  (( took <= 20 )) || fail "real libFuzzer --time=10 took $took s"
else
  echo "note: clang's libFuzzer is not installed; the real-binary case is skipped"
fi

echo PASS
