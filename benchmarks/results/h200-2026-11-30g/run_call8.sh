# Session 25 call 8: transfer batches owned by their thread (uncommitted change on be6bfc0+):
# cuda_stream_test (BelongsToTheThreadThatBeganIt), weights_test_cuda, with memcheck on
# cuda_stream_test's batch tests, then BM_WeightUpdate again.
set -u
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"
tar xJf .gpu/lockA.tar.xz -C "$W" && B="$W/lockA"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
RUN_ALL_TIMEOUT=120 timeout 150 "$B/run_all.sh" --out "$W/tests" --no-gpu-check > "$R/log.txt" 2>&1
cp "$W/tests/summary.txt" "$R/gpu_tests_call8.txt"
SANITIZE_GTEST_FILTER='TransferBatchTest.*' RUN_ALL_SANITIZE_TIMEOUT=100 timeout 200 "$B/run_all.sh" --sanitize --filter cuda_stream_test --out "$W/san" --no-gpu-check >> "$R/log.txt" 2>&1
cp "$W/san/summary.txt" "$R/sanitize_call8.txt"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 90 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_filter='BM_WeightUpdate' --benchmark_repetitions=3 --benchmark_out="$R/cuda_graph_benchmark_weights_call8.json" --benchmark_out_format=json > "$R/bench.log" 2>&1)
tar czf "$OUT/results.tar.gz" -C "$W" r
cat "$R/gpu_tests_call8.txt" "$R/sanitize_call8.txt" | grep -E "PASS|FAIL|tests"
grep -E "median" "$R/bench.log" | cut -c1-120
