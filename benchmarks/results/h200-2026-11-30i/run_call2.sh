# Session 27 calls 2-3: the GPU tests touched by the review fixes (bundle named by $1: fixA or
# fixB), full logs kept; fixA also runs the main job on CUDA and memcheck on the new CUDA tests.
set -u
N="$1"
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=index,name,driver_version --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf ".gpu/$N.tar.xz" -C "$W" && B="$W/$N"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
NORMGRAPH_AUDIT_CHECK=1 RUN_ALL_TIMEOUT=200 timeout 300 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
mkdir -p "$R/test_logs" && tar xzf "$W/tests/logs.tar.gz" -C "$R/test_logs" 2>/dev/null
grep -rhE "^\[  FAILED|Failure|SKIPPED|^\[  PASSED" "$R/test_logs" | head -40 >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
if [[ "$N" == fixA ]]; then
  NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1)
  echo "== main job ($NG) $(el)" >> "$L"
  (cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $?" >> "$L")
  (cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --model=gemma3 --inject=legacy-loader --cycles=2 > "$R/main_job_cuda_gemma3_legacy.txt" 2>&1; echo "main job (gemma3, legacy loader) exit $?" >> "$L")
  echo "== memcheck $(el)" >> "$L"
  (cd "$B/runfiles/"* && timeout 120 compute-sanitizer --tool memcheck --error-exitcode=1 "$B/bin/graph/cuda_repair_test" > "$R/memcheck_cuda_repair_test.txt" 2>&1; echo "memcheck cuda_repair_test exit $?" >> "$L")
  (cd "$B/runfiles/"* && timeout 120 compute-sanitizer --tool memcheck --error-exitcode=1 "$B/bin/core/cuda/cuda_stream_test" > "$R/memcheck_cuda_stream_test.txt" 2>&1; echo "memcheck cuda_stream_test exit $?" >> "$L")
fi
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -45
# Session 27 call 2: both bundles of the review fixes (fixA, then fixB): s27_fix.sh for each.
bash .gpu/scripts/s27_fix.sh fixA > /tmp/fixA.out 2>&1
mv "$OUT/results.tar.gz" "$OUT/results_fixA.tar.gz"
bash .gpu/scripts/s27_fix.sh fixB > /tmp/fixB.out 2>&1
mv "$OUT/results.tar.gz" "$OUT/results_fixB.tar.gz"
tail -25 /tmp/fixA.out; echo ======; tail -20 /tmp/fixB.out
