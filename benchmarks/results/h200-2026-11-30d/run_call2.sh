# Session 22 call 2: the record run of commit 21c0ca5 (FMA exponential, fewer silu selects):
# GPU tests, memcheck on silu_test, the main job, norm and graph benchmarks, the peers, and an
# ncu profile of the gated bf16 32768 x 4096 kernel.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/c22b.tar.xz -C "$W" && B="$W/c22b"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=150 timeout 200 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
(cd "$B/runfiles/"* && timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 "$B/bin/kernels/cuda/silu_test" > "$R/memcheck_silu_test.txt" 2>&1; echo "silu_test memcheck exit $?" >> "$L")
echo "== main job $(el)" >> "$L"
NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1); echo "main job binary: $NG" >> "$L"
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $?" >> "$L")
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --model=gemma3 --inject=legacy-loader --cycles=2 > "$R/main_job_cuda_gemma3_legacy.txt" 2>&1; echo "main job (gemma3, legacy loader) exit $?" >> "$L")
echo "== norm benchmark $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 100 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter='BM_Norm/' --benchmark_out="$R/cuda_norm_benchmark.json" --benchmark_out_format=json > "$R/norm_bench.log" 2>&1)
echo "norm benchmark exit $? $(el)" >> "$L"
echo "== graph benchmark $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 90 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_out="$R/cuda_graph_benchmark.json" --benchmark_out_format=json > "$R/graph_bench.log" 2>&1)
echo "graph benchmark exit $? $(el)" >> "$L"
echo "== peers $(el)" >> "$L"
timeout 200 python3 tools/bench/peers.py --budget-s 150 --out "$R/peers.json" > "$R/peers.log" 2>&1
echo "peers exit $? $(el)" >> "$L"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' > "$R/versions.txt" 2>&1
echo "== ncu $(el)" >> "$L"
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 90 "$NCU" --clock-control none --kernel-name regex:RmsNorm --launch-skip 3 --launch-count 1 \
  --section SpeedOfLight --section WarpStateStats --section InstructionStats --section ComputeWorkloadAnalysis --section Occupancy \
  "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter='BM_Norm/gated/bf16/prefill/rows:32768/hidden:4096/' --benchmark_min_time=0.01 \
  > "$R/ncu_gated_bf16_32768x4096.txt" 2>&1; echo "ncu exit $?" >> "$L")
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -30
grep -E 'BM_Norm/gated/bf16/prefill' "$R/norm_bench.log" | awk '{print $1, $2}' | head -20
grep -E 'DecodeStackReplay/batch:(1|8|64)/pdl:1/k:0/copy:0/cluster:0' "$R/graph_bench.log" | awk '{print $1, $2}'
