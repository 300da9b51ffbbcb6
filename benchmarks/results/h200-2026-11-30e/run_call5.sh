# Session 23 call 5, the record run of the final code: spread launches take precedence over the
# wide gated form. GPU tests (kernels_cuda_test, norm_stacks_test_cuda), the main job,
# cuda_norm_benchmark BM_Norm/, cuda_graph_benchmark (spreading on) and its decode stacks with
# NORMGRAPH_CUDA_SPREAD=0, the peers, then the sanitizers on kernels_cuda_test.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/s23e.tar.xz -C "$W" && B="$W/s23e"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=150 timeout 200 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
tar xzf "$W/tests/logs.tar.gz" -C "$W/tests" 2>/dev/null; grep -rh "layout cases bit-identical" "$W/tests" | head -2 >> "$L"
echo "== main job $(el)" >> "$L"
NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1)
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $?" >> "$L")
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --model=gemma3 --inject=legacy-loader --cycles=2 > "$R/main_job_cuda_gemma3_legacy.txt" 2>&1; echo "main job (gemma3, legacy loader) exit $?" >> "$L")
echo "== benchmarks $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 100 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter='BM_Norm/' --benchmark_out="$R/cuda_norm_benchmark.json" --benchmark_out_format=json > "$R/norm_bench.log" 2>&1)
echo "norm benchmark exit $? $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 90 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_out="$R/cuda_graph_benchmark.json" --benchmark_out_format=json > "$R/graph_bench.log" 2>&1)
echo "graph benchmark exit $? $(el)" >> "$L"
(cd "$B/runfiles/"* && NORMGRAPH_CUDA_SPREAD=0 TEST_TMPDIR="$W" timeout 90 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_filter='DecodeStackReplay' --benchmark_out="$R/cuda_graph_benchmark_spread0.json" --benchmark_out_format=json > "$R/graph_bench_spread0.log" 2>&1)
echo "graph benchmark (spread off) exit $? $(el)" >> "$L"
timeout 200 python3 tools/bench/peers.py --budget-s 150 --out "$R/peers.json" > "$R/peers.log" 2>&1
echo "peers exit $? $(el)" >> "$L"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' > "$R/versions.txt" 2>&1
tar czf "$OUT/results.tar.gz" -C "$W" r
NORMGRAPH_SWEEP_CASES=12 RUN_ALL_SANITIZE_TIMEOUT=150 timeout 170 "$B/run_all.sh" --sanitize --filter kernels_cuda_test --out "$W/san" --no-gpu-check >> "$L" 2>&1
echo "sanitize exit $? $(el)" >> "$L"; cp "$W/san/summary.txt" "$R/sanitize.txt" 2>/dev/null
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -24
grep -E "DecodeStackReplay/batch:(1|16|32|64)/pdl:1/k:0/copy:0/cluster:0/hidden:4096|GatedDecodeStackReplay" "$R/graph_bench.log" "$R/graph_bench_spread0.log" | awk '{print $1, $2}'
