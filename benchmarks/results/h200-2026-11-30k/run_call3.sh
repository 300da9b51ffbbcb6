# Session 29 call 3 (bundle .gpu/s29c, HEAD's kernels + the gated-with-residual test cases): every GPU
# test (run_all.sh), the record run (cuda_norm_benchmark BM_Norm/ and BM_Layout/fused_add,
# cuda_graph_benchmark and its decode stacks with NORMGRAPH_CUDA_SPREAD=0), the peers with outputs
# kept in a ring (tools/bench/peers.py's default now), the main job on CUDA.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/s29c.tar.xz -C "$W" && B="$W/s29c"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
save() { tar czf "$OUT/results.tar.gz" -C "$W" r; }
REPO=$(pwd)
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=200 timeout 260 "$B/run_all.sh" --out "$W/tests" --no-gpu-check > "$R/run_all.txt" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
cat "$R/gpu_tests.txt" >> "$L" 2>/dev/null
mkdir -p "$R/test_logs" && tar xzf "$W/tests/logs.tar.gz" -C "$R/test_logs" 2>/dev/null
grep -rhE "^\[  FAILED|Failure|bit-identical" "$R/test_logs" | head -30 >> "$L"
save
echo "== benchmarks $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 100 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter='BM_Norm/|BM_Layout/fused_add' --benchmark_out="$R/cuda_norm_benchmark.json" --benchmark_out_format=json > "$R/norm_bench.log" 2>&1)
echo "norm benchmark exit $? $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 80 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_out="$R/cuda_graph_benchmark.json" --benchmark_out_format=json > "$R/graph_bench.log" 2>&1)
echo "graph benchmark exit $? $(el)" >> "$L"
(cd "$B/runfiles/"* && NORMGRAPH_CUDA_SPREAD=0 TEST_TMPDIR="$W" timeout 40 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_filter='DecodeStackReplay' --benchmark_out="$R/cuda_graph_benchmark_spread0.json" --benchmark_out_format=json > "$R/graph_bench_spread0.log" 2>&1)
echo "graph benchmark (spread off) exit $? $(el)" >> "$L"
save
timeout 190 python3 tools/bench/peers.py --budget-s 120 --out "$R/peers.json" > "$R/peers.log" 2>&1
echo "peers exit $? $(el)" >> "$L"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' > "$R/versions.txt" 2>&1
save
NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1)
(cd "$B/runfiles/"* && timeout 40 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1); echo "main job exit $? $(el)" >> "$L"
tail -5 "$R/main_job_cuda.txt" >> "$L"
echo "== done $(el)" >> "$L"
save
cat "$L"
