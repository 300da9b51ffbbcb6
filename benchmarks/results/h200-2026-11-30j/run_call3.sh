# Session 28 call 3: the weight in shared memory (kSharedWeightForm, K = 4 launches not staged) on
# top of the silu table. kernels_cuda_test in full (bit-identity with every K = 4 launch taking
# it), then BM_Norm/ prefill of every variant and dtype with NORMGRAPH_CUDA_SHARED_WEIGHT=0 / 1
# interleaved three times (one binary), and ncu of rms bf16 4096 x 16384 both ways.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/sw1.tar.xz -C "$W" && B="$W/sw1"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
save() { tar czf "$OUT/results.tar.gz" -C "$W" r; }
cd "$B/runfiles/"*
echo "== test $(el)" > "$L"
timeout 200 "$B/bin/kernels/cuda/kernels_cuda_test" > "$R/kernels_cuda_test.txt" 2>&1
echo "test exit $? $(el)" >> "$L"
grep -E "^\[  FAILED|Failure|bit-identical|Expected|Which is|described|K=4" "$R/kernels_cuda_test.txt" | head -30 >> "$L"
save
BIN="$B/bin/benchmarks/cuda_norm_benchmark"
for round in 1 2 3; do
  for t in 0 1; do
    NORMGRAPH_CUDA_SHARED_WEIGHT=$t TEST_TMPDIR="$W" timeout 60 "$BIN" --benchmark_filter='BM_Norm/.*/prefill/' --benchmark_out="$R/sw${t}_$round.json" --benchmark_out_format=json > "$R/sw${t}_$round.log" 2>&1
    echo "shared weight=$t round $round exit $? $(el)" >> "$L"
  done
done
save
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
for t in 0 1; do
NORMGRAPH_CUDA_SHARED_WEIGHT=$t TEST_TMPDIR="$W" timeout 60 "$NCU" --clock-control none --kernel-name regex:RmsNorm --launch-skip 3 --launch-count 1 \
  --section SpeedOfLight --section WarpStateStats --section InstructionStats --section Occupancy --section MemoryWorkloadAnalysis \
  "$BIN" --benchmark_filter='BM_Norm/rms/bf16/prefill/rows:4096/hidden:16384/' --benchmark_min_time=0.01 > "$R/ncu_rms_4096x16384_sw$t.txt" 2>&1
echo "ncu $t exit $? $(el)" >> "$L"
done
echo "== done $(el)" >> "$L"
save
cat "$L"
