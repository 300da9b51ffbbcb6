# Session 25 calls 5-6: the GPU tests not yet run on this session's code (HEAD be6bfc0:
# slab host blocks, transfer batches, linear safetensors headers). Usage: s25_call5.sh BUNDLE
set -u
N="$1"
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf ".gpu/$N.tar.xz" -C "$W" && B="$W/$N"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=200 timeout 260 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests_$N.txt" 2>/dev/null
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -20
