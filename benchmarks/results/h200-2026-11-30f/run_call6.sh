# Session 24 call 6: the residual K = 2 forms with up to 128 registers (no spill; they spilled
# 48-104 bytes at 64), against call 3's numbers: kernels_cuda_test, then BM_Norm/fused_add and the
# BM_Layout/fused_add sweep.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/benchD.tar.xz -C "$W" && B="$W/benchD"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 60 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter='BM_Norm/fused_add/(bf16|f16)/prefill|BM_Layout/fused_add' --benchmark_out="$R/cuda_norm_benchmark_call6.json" --benchmark_out_format=json > "$R/norm_bench.log" 2>&1)
echo "norm benchmark exit $? $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
echo "== tests $(el)" >> "$L"
RUN_ALL_TIMEOUT=200 timeout 230 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests_call6.txt" 2>/dev/null
tar xzf "$W/tests/logs.tar.gz" -C "$W/tests" 2>/dev/null; grep -rh "bit-identical" "$W/tests" | head -4 >> "$L"
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -20
grep -E "BM_Norm|BM_Layout" "$R/norm_bench.log" | awk '{print $1, $2}' | sed 's/.iterations:1.manual_time//'
