# Session 26 call 6: the review's fixes to the staged plan (only rows of 1024/2048 chunks, no
# gate, blocks that walk several rows): kernels_cuda_test.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/stg3.tar.xz -C "$W" && B="$W/stg3"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=170 timeout 190 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
mkdir -p "$W/tl" && tar xzf "$W/tests/logs.tar.gz" -C "$W/tl" 2>/dev/null; grep -rhE "^\[  FAILED|Failure|bit-identical|^\[       OK" "$W/tl" | head -30 >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -30
