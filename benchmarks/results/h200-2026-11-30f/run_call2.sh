# Session 24 call 2: f32 rows of 8193-16384 on the register-cached kernel (K = 4).
# kernels_cuda_test and norm_stacks_test_cuda, the main job, BM_Norm/ and the BM_Layout/ sweep
# (fused add added), then the sanitizers on kernels_cuda_test.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/benchB.tar.xz -C "$W" && B="$W/benchB"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=200 timeout 260 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
tar xzf "$W/tests/logs.tar.gz" -C "$W/tests" 2>/dev/null; grep -rh "bit-identical" "$W/tests" | head -4 >> "$L"
echo "== main job $(el)" >> "$L"
NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1)
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $?" >> "$L")
echo "== benchmarks $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 150 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter='BM_Norm/|BM_Layout/' --benchmark_out="$R/cuda_norm_benchmark.json" --benchmark_out_format=json > "$R/norm_bench.log" 2>&1)
echo "norm benchmark exit $? $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
NORMGRAPH_SWEEP_CASES=12 RUN_ALL_SANITIZE_TIMEOUT=150 timeout 170 "$B/run_all.sh" --sanitize --filter kernels_cuda_test --out "$W/san" --no-gpu-check >> "$L" 2>&1
echo "sanitize exit $? $(el)" >> "$L"; cp "$W/san/summary.txt" "$R/sanitize.txt" 2>/dev/null
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -24
grep -E "f32/prefill/rows:(1024|4096|32768)/hidden:(8192|16384)|BM_Layout/fused_add" "$R/norm_bench.log" | awk '{print $1, $2, $4}' | head -60
