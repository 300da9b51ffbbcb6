# Session 26 call 4: the staged kernels with the shared-memory limit only ever raised (the fix of
# call 3's failures): kernels_cuda_test, norm_stacks_test_cuda, incident_test_cuda, the main job,
# then the staged tests under compute-sanitizer memcheck.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/stg2.tar.xz -C "$W" && B="$W/stg2"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=200 timeout 240 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
mkdir -p "$W/tl" && tar xzf "$W/tests/logs.tar.gz" -C "$W/tl" 2>/dev/null; grep -rhE "^\[  FAILED|Failure|bit-identical" "$W/tl" | head -20 >> "$L"
cp -r "$W/tl" "$R/test_logs" 2>/dev/null
NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1)
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $?" >> "$L")
tar czf "$OUT/results.tar.gz" -C "$W" r
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
(cd "$B/runfiles/"* && timeout 120 "$CS" --tool memcheck --error-exitcode=1 "$B/bin/kernels/cuda/kernels_cuda_test" --gtest_filter='*Staged*' > "$R/sanitize_memcheck.txt" 2>&1; echo "memcheck exit $? $(el)" >> "$L")
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -30
grep -E "verdict|summary" "$R"/main_job_cuda.txt | head
