# Session 24 call 5: ncu of the shapes still behind the peers, and one that is not: rms bf16
# 4096 x 16384 (K = 4, one 512-thread CTA an SM), rms f32 4096 x 16384 (the new f32 K = 4), fused add
# bf16 4096 x 1536 (K = 2 now), and rms bf16 4096 x 4096 (K = 4 in 128-thread blocks) beside them.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/benchB.tar.xz -C "$W" && B="$W/benchB"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
for spec in rms/bf16/prefill/rows:4096/hidden:16384 rms/f32/prefill/rows:4096/hidden:16384 fused_add/bf16/prefill/rows:4096/hidden:1536 rms/bf16/prefill/rows:4096/hidden:4096; do
  name=$(echo "$spec" | sed 's|/prefill/rows:|_|; s|/hidden:|x|; s|/|_|g')
  echo "== ncu $spec $(el)" >> "$L"
  (cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 100 "$NCU" --clock-control none --kernel-name regex:RmsNorm --launch-skip 3 --launch-count 1 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section InstructionStats --section ComputeWorkloadAnalysis --section Occupancy --section LaunchStats \
    "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter="BM_Norm/$spec/" --benchmark_min_time=0.01 \
    > "$R/ncu_$name.txt" 2>&1; echo "ncu exit $?" >> "$L")
  tar czf "$OUT/results.tar.gz" -C "$W" r
done
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
cat "$L"
for f in "$R"/ncu_*.txt; do echo "== $f"; grep -E "DRAM Throughput|Memory Throughput|Duration|Registers Per|Achieved Occupancy|Theoretical Occupancy|Issue Slots Busy|Executed Ipc A|Block Size|Grid Size|Stall|Warp Cycles Per Issued" "$f" | head -16; done
