# Session 27 call 1, the record run of commit ae19f81 (staged fused-add rows): kernels_cuda_test and
# norm_stacks_test_cuda (full logs kept), the main job on CUDA, cuda_norm_benchmark BM_Norm/ and
# BM_Layout/fused_add, cuda_graph_benchmark (and its decode stacks with NORMGRAPH_CUDA_SPREAD=0),
# the peers, then memcheck on the staged tests.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/rec1.tar.xz -C "$W" && B="$W/rec1"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=200 timeout 260 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
mkdir -p "$R/test_logs" && tar xzf "$W/tests/logs.tar.gz" -C "$R/test_logs" 2>/dev/null
grep -rhE "^\[  FAILED|Failure|bit-identical|staged" "$R/test_logs" | head -40 >> "$L"
echo "== main job $(el)" >> "$L"
NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1)
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $?" >> "$L")
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --model=gemma3 --inject=legacy-loader --cycles=2 > "$R/main_job_cuda_gemma3_legacy.txt" 2>&1; echo "main job (gemma3, legacy loader) exit $?" >> "$L")
tar czf "$OUT/results.tar.gz" -C "$W" r
echo "== benchmarks $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 150 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter='BM_Norm/|BM_Layout/fused_add' --benchmark_out="$R/cuda_norm_benchmark.json" --benchmark_out_format=json > "$R/norm_bench.log" 2>&1)
echo "norm benchmark exit $? $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 100 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_out="$R/cuda_graph_benchmark.json" --benchmark_out_format=json > "$R/graph_bench.log" 2>&1)
echo "graph benchmark exit $? $(el)" >> "$L"
(cd "$B/runfiles/"* && NORMGRAPH_CUDA_SPREAD=0 TEST_TMPDIR="$W" timeout 60 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_filter='DecodeStackReplay' --benchmark_out="$R/cuda_graph_benchmark_spread0.json" --benchmark_out_format=json > "$R/graph_bench_spread0.log" 2>&1)
echo "graph benchmark (spread off) exit $? $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
timeout 190 python3 tools/bench/peers.py --budget-s 150 --out "$R/peers.json" > "$R/peers.log" 2>&1
echo "peers exit $? $(el)" >> "$L"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' > "$R/versions.txt" 2>&1
tar czf "$OUT/results.tar.gz" -C "$W" r
echo "== memcheck staged $(el)" >> "$L"
(cd "$B/runfiles/"* && timeout 100 compute-sanitizer --tool memcheck --error-exitcode=1 "$B/bin/kernels/cuda/kernels_cuda_test" --gtest_filter='*Staged*' > "$R/memcheck_staged.txt" 2>&1; echo "memcheck exit $? $(el)" >> "$L")
tail -5 "$R/memcheck_staged.txt" >> "$L"
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -40
grep -E "time per replay" "$R/main_job_cuda.txt"
