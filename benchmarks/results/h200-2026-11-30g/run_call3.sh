# Session 25 call 3: weight updates in transfer batches (commit c7d896f + the bundle's
# uncommitted changes, if any): cuda_stream_test (the batch tests), weights_test_cuda,
# checkpoint_dir_test_cuda, norm_stacks_test_cuda, the main job on CUDA (weight updates between
# replays, Qwen3.5 and the Gemma3 legacy loader), then BM_WeightUpdate / BM_FileRead.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/batchA.tar.xz -C "$W" && B="$W/batchA"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=150 timeout 200 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
mkdir -p "$W/tl" && tar xzf "$W/tests/logs.tar.gz" -C "$W/tl" 2>/dev/null; grep -rhE "^\[  FAILED|Failure|TransferBatch" "$W/tl" | head -20 >> "$L"
NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1)
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $?" >> "$L")
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --model=gemma3 --inject=legacy-loader --cycles=2 > "$R/main_job_cuda_gemma3_legacy.txt" 2>&1; echo "main job (gemma3, legacy loader) exit $?" >> "$L")
tar czf "$OUT/results.tar.gz" -C "$W" r
echo "== benchmarks $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 120 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_filter='BM_WeightUpdate|BM_FileRead' --benchmark_repetitions=3 --benchmark_out="$R/cuda_graph_benchmark_weights.json" --benchmark_out_format=json > "$R/graph_bench_weights.log" 2>&1)
echo "graph benchmark exit $? $(el)" >> "$L"
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -30
grep -E "verdict|summary" "$R"/main_job_cuda*.txt
grep -E "^BM_" "$R/graph_bench_weights.log" | cut -c1-150
