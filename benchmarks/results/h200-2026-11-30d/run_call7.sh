# Session 22 call 7: the wide gated K = 1 kernels with PDL above 16 row groups (product):
# kernels_cuda_test (with the planning test), the layer GPU tests, the gated decode chain
# (wide and not, same run) and the norm benchmark.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/c22e.tar.xz -C "$W" && B="$W/c22e"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=120 timeout 160 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
grep -h "layout cases\|wide" "$W"/tests/logs/*.log 2>/dev/null | head -5 >> "$L"
echo "== graph benchmark $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 60 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_filter='BM_GatedDecodeStackReplay|BM_DecodeStackReplay/batch:(1|8|64)/pdl:1/k:0/copy:0/cluster:0/hidden:4096' --benchmark_out="$R/cuda_graph_benchmark_call7.json" --benchmark_out_format=json > "$R/graph_bench.log" 2>&1)
echo "graph benchmark exit $? $(el)" >> "$L"
echo "== norm benchmark $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 60 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter='BM_Norm/gated/' --benchmark_out="$R/cuda_norm_benchmark_call7.json" --benchmark_out_format=json > "$R/norm_bench.log" 2>&1)
echo "norm benchmark exit $? $(el)" >> "$L"
echo "== done $(el)" >> "$L"
cp "$R"/* "$OUT"/
cat "$L"
grep -E 'Replay' "$R/graph_bench.log" | awk '{print $1, $2}'
