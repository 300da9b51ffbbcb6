# Session 26 call 5: the one-pass safetensors header on the GPU path: weights_test_cuda,
# checkpoint_dir_test_cuda, then BM_WeightUpdate / BM_FileRead (3 repetitions).
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/wu.tar.xz -C "$W" && B="$W/wu"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=100 timeout 120 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
tar czf "$OUT/results.tar.gz" -C "$W" r
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 100 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_filter='BM_WeightUpdate|BM_FileRead' --benchmark_repetitions=3 --benchmark_out="$R/cuda_graph_benchmark_weights.json" --benchmark_out_format=json > "$R/graph_bench_weights.log" 2>&1)
echo "graph benchmark exit $? $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -12
grep -E "^BM_" "$R/graph_bench_weights.log" | cut -c1-160
