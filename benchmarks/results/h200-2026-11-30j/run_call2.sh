# Session 28 call 2: the silu-table kernels (kSiluTableForm; cp.async copy, one branch a chunk),
# threshold 1 (every gated bf16 K = 4 launch). kernels_cuda_test (gated and layout tests), then
# BM_Norm/gated/ with NORMGRAPH_CUDA_SILU_TABLE=0 / 1 interleaved three times (one binary), the
# 37733bd binary once, and ncu of the table kernel at 32768 x 4096.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/tab2.tar.xz -C "$W" && B="$W/tab2"
tar xJf .gpu/old_bench.tar.xz -C "$W" && OLD="$W/old/bin/cuda_norm_benchmark"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
save() { tar czf "$OUT/results.tar.gz" -C "$W" r; }
cd "$B/runfiles/"*
echo "== test $(el)" > "$L"
timeout 200 "$B/bin/kernels/cuda/kernels_cuda_test" --gtest_filter='*EveryBf16Gate*:*RandomShapes*:*EveryLaunchLayout*' > "$R/kernels_cuda_test.txt" 2>&1
echo "test exit $? $(el)" >> "$L"
grep -E "^\[  FAILED|Failure|bit-identical|Expected|Which is" "$R/kernels_cuda_test.txt" | head -20 >> "$L"
save
BIN="$B/bin/benchmarks/cuda_norm_benchmark"
F='BM_Norm/gated/bf16/'
for round in 1 2 3; do
  for t in 0 1; do
    NORMGRAPH_CUDA_SILU_TABLE=$t TEST_TMPDIR="$W" timeout 60 "$BIN" --benchmark_filter="$F" --benchmark_out="$R/t${t}_$round.json" --benchmark_out_format=json > "$R/t${t}_$round.log" 2>&1
    echo "table=$t round $round exit $? $(el)" >> "$L"
  done
done
TEST_TMPDIR="$W" timeout 60 "$OLD" --benchmark_filter="$F" --benchmark_out="$R/old.json" --benchmark_out_format=json > "$R/old.log" 2>&1
echo "old exit $? $(el)" >> "$L"
save
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
TEST_TMPDIR="$W" timeout 90 "$NCU" --clock-control none --kernel-name regex:RmsNorm --launch-skip 3 --launch-count 1 \
  --section SpeedOfLight --section WarpStateStats --section InstructionStats --section ComputeWorkloadAnalysis --section Occupancy --section MemoryWorkloadAnalysis \
  "$BIN" --benchmark_filter='BM_Norm/gated/bf16/prefill/rows:32768/hidden:4096/' --benchmark_min_time=0.01 > "$R/ncu_table_32768x4096.txt" 2>&1
echo "ncu exit $? $(el)" >> "$L"
echo "== done $(el)" >> "$L"
save
cat "$L"
