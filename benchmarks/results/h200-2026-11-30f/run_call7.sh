# Session 24 call 7: the f32 K = 4 forms without a residual with the software pipeline (108 bytes
# of spills) against call 3's (no pipeline, no spill): BM_Norm f32 prefill at 16384 and 8192
# (control), then kernels_cuda_test.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/benchD.tar.xz -C "$W" && B="$W/benchD"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for round in 1 2; do
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 60 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter='BM_Norm/.*/f32/prefill/rows:(1024|4096|32768)/hidden:(8192|16384)' --benchmark_out="$R/cuda_norm_benchmark_call7_round$round.json" --benchmark_out_format=json > "$R/norm_bench_$round.log" 2>&1)
echo "norm benchmark exit $? $(el)" >> "$L"
done
tar czf "$OUT/results.tar.gz" -C "$W" r
echo "== tests $(el)" >> "$L"
RUN_ALL_TIMEOUT=200 timeout 230 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests_call7.txt" 2>/dev/null
tar xzf "$W/tests/logs.tar.gz" -C "$W/tests" 2>/dev/null; grep -rh "bit-identical" "$W/tests" | head -4 >> "$L"
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -20
grep -E "BM_Norm" "$R/norm_bench_1.log" "$R/norm_bench_2.log" | awk '{print $1, $2}' | sed 's/.iterations:1.manual_time//'
