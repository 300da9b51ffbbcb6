# Session 29 call 1: HEAD (90550dd) kernels_cuda_test in full; peers with outputs kept in a ring vs
# reused (PyTorch's allocator); inductor's generated code and ncu of inductor vs ours at the shapes
# furthest behind torch.compile.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/s29a.tar.xz -C "$W" && B="$W/s29a"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
save() { tar czf "$OUT/results.tar.gz" -C "$W" r; }
REPO=$(pwd)
(cd "$B/runfiles/"* && timeout 200 "$B/bin/kernels/cuda/kernels_cuda_test" > "$R/kernels_cuda_test.txt" 2>&1; echo "kernels_cuda_test exit $? $(el)" >> "$L")
grep -hE "^\[  FAILED|Failure|bit-identical|PASSED" "$R/kernels_cuda_test.txt" >> "$L"
save
timeout 170 python3 tools/bench/peers.py --outputs both --peers torch_eager,torch_compile --budget-s 140 \
  --prefill-shapes 4096x1536,4096x4096,32768x1536,4096x16384,32768x16384 --out "$R/peers_outputs.json" > "$R/peers_outputs.log" 2>&1
echo "peers exit $? $(el)" >> "$L"
save
for c in "zero_centred 32768 16384" "gated 32768 16384" "fused_add 4096 1536" "rms 32768 16384"; do
  set -- $c
  TORCH_LOGS=output_code timeout 60 python3 .gpu/scripts/s29_inductor.py $c > "$R/inductor_code_$1_$2x$3.txt" 2>&1
done
echo "inductor code $(el)" >> "$L"
NCU="ncu --clock-control none --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis"
for c in "zero_centred 32768 16384" "gated 32768 16384" "fused_add 4096 1536"; do
  set -- $c
  timeout 90 $NCU --target-processes all --nvtx --nvtx-include 'profile/' python3 .gpu/scripts/s29_inductor.py $c > "$R/ncu_inductor_$1_$2x$3.txt" 2>&1
  echo "ncu inductor $c exit $? $(el)" >> "$L"
  (cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 90 $NCU --kernel-name regex:RmsNorm --launch-skip 3 --launch-count 1 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter="BM_Norm/$1/bf16/prefill/rows:$2/hidden:$3/" > "$R/ncu_ours_$1_$2x$3.txt" 2>&1)
  echo "ncu ours $c exit $? $(el)" >> "$L"
  save
done
nvidia-smi > "$R/nvidia-smi.txt" 2>&1
echo "== done $(el)" >> "$L"
save
cat "$L"
grep -E "^torch" "$R/peers_outputs.log" | head -60
