# Session 25 call 11: the review's staging change (commit b57b789): cuda_stream_test (transfer
# batches), weights_test_cuda, memcheck/racecheck/initcheck on cuda_stream_test's batch tests,
# and BM_WeightUpdate (the shared checkpoint helper).
set -u
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"
tar xJf .gpu/reviewA.tar.xz -C "$W" && B="$W/reviewA"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
RUN_ALL_TIMEOUT=120 timeout 150 "$B/run_all.sh" --out "$W/tests" --no-gpu-check > "$R/log.txt" 2>&1
cp "$W/tests/summary.txt" "$R/gpu_tests_call11.txt"
SANITIZE_GTEST_FILTER='TransferBatchTest.*' RUN_ALL_SANITIZE_TIMEOUT=100 timeout 200 "$B/run_all.sh" --sanitize --filter cuda_stream_test --out "$W/san" --no-gpu-check >> "$R/log.txt" 2>&1
cp "$W/san/summary.txt" "$R/sanitize_call11.txt"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 90 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_filter='BM_WeightUpdate|BM_FileRead' --benchmark_out="$R/cuda_graph_benchmark_weights_call11.json" --benchmark_out_format=json > "$R/bench.log" 2>&1; echo "bench exit $?" >> "$R/log.txt")
tar czf "$OUT/results.tar.gz" -C "$W" r
cat "$R/gpu_tests_call11.txt" "$R/sanitize_call11.txt" | grep -E "PASS|FAIL|tests"; tail -1 "$R/log.txt"
grep -E "^BM_" "$R/bench.log" | cut -c1-110
