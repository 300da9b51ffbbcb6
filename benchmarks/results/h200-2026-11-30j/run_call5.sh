# Session 28 call 5: the record run of the final code (bundle .gpu/rec): cuda_norm_benchmark BM_Norm/
# and BM_Layout/fused_add, cuda_graph_benchmark (and its decode stacks with NORMGRAPH_CUDA_SPREAD=0),
# then the peers (all variants, budget 150 s).
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/rec.tar.xz -C "$W" && B="$W/rec"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
save() { tar czf "$OUT/results.tar.gz" -C "$W" r; }
echo "== kernel tests $(el)" > "$L"
(cd "$B/runfiles/"* && timeout 120 "$B/bin/kernels/cuda/kernels_cuda_test" --gtest_filter='*EmptySlot*:*EveryBf16Gate*:*SiluTable*:*Staged*:*Spread*:*Wide*' > "$R/kernels_cuda_test.txt" 2>&1; echo "kernel tests exit $? $(el)" >> "$L")
grep -E "^\[  FAILED|Failure|bit-identical|PASSED" "$R/kernels_cuda_test.txt" | head -20 >> "$L"
echo "== benchmarks $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 150 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter='BM_Norm/|BM_Layout/fused_add' --benchmark_out="$R/cuda_norm_benchmark.json" --benchmark_out_format=json > "$R/norm_bench.log" 2>&1)
echo "norm benchmark exit $? $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 120 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_out="$R/cuda_graph_benchmark.json" --benchmark_out_format=json > "$R/graph_bench.log" 2>&1)
echo "graph benchmark exit $? $(el)" >> "$L"
(cd "$B/runfiles/"* && NORMGRAPH_CUDA_SPREAD=0 TEST_TMPDIR="$W" timeout 60 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_filter='DecodeStackReplay' --benchmark_out="$R/cuda_graph_benchmark_spread0.json" --benchmark_out_format=json > "$R/graph_bench_spread0.log" 2>&1)
echo "graph benchmark (spread off) exit $? $(el)" >> "$L"
save
timeout 200 python3 tools/bench/peers.py --budget-s 150 --out "$R/peers.json" > "$R/peers.log" 2>&1
echo "peers exit $? $(el)" >> "$L"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' > "$R/versions.txt" 2>&1
echo "== done $(el)" >> "$L"
save
cat "$L"
