# Session 27 call 3: every GPU test of the final code (bundle .gpu/full: all gpu-tagged tests and
# benchmarks, plus the main job), with the check audited (NORMGRAPH_AUDIT_CHECK=1); the main job on
# CUDA; cuda_graph_benchmark (decode stacks, checks, repairs, weight updates); memcheck on the
# graph and stream tests (the deliberate API-error tests left out).
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,clocks.mem --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/full.tar.xz -C "$W" && B="$W/full"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
NORMGRAPH_AUDIT_CHECK=1 RUN_ALL_TIMEOUT=240 timeout 330 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
mkdir -p "$R/test_logs" && tar xzf "$W/tests/logs.tar.gz" -C "$R/test_logs" 2>/dev/null
grep -rhE "^\[  FAILED|Failure|SKIPPED|bit-identical" "$R/test_logs" | head -40 >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
NG="$B/bin/tools/normgraph"
echo "== main job $(el)" >> "$L"
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $?" >> "$L")
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --model=gemma3 --inject=legacy-loader --cycles=2 > "$R/main_job_cuda_gemma3_legacy.txt" 2>&1; echo "main job (gemma3, legacy loader) exit $?" >> "$L")
echo "== graph benchmark $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 100 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_out="$R/cuda_graph_benchmark.json" --benchmark_out_format=json > "$R/graph_bench.log" 2>&1; echo "graph benchmark exit $?" >> "$L")
tar czf "$OUT/results.tar.gz" -C "$W" r
echo "== memcheck $(el)" >> "$L"
for t in graph/cuda_repair_test graph/captured_graph_test_cuda core/cuda/cuda_stream_test; do
  f="-CudaApiErrorTest.*"
  (cd "$B/runfiles/"* && timeout 100 compute-sanitizer --tool memcheck --error-exitcode=1 "$B/bin/$t" --gtest_filter="$f" > "$R/memcheck_$(basename $t).txt" 2>&1; echo "memcheck $t exit $? $(el)" >> "$L")
done
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -50
grep -E "time per replay" "$R/main_job_cuda.txt"
