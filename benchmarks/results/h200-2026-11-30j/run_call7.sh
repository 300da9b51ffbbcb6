# Session 28 call 7: HF's float32 overflow rule (numerics::SumAsFloat32Accumulates) in every kernel:
# kernels_cuda_test in full (a new value family whose float32 squares overflow), then the decode
# stacks at batch 1 and 64 (the rule adds a compare to each row's factor).
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/ovf.tar.xz -C "$W" && B="$W/ovf"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cd "$B/runfiles/"*
timeout 170 "$B/bin/kernels/cuda/kernels_cuda_test" > "$R/kernels_cuda_test_call7.txt" 2>&1
echo "kernels_cuda_test exit $? $(el)" >> "$L"
grep -hE "^\[  FAILED|Failure|bit-identical|PASSED" "$R/kernels_cuda_test_call7.txt" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
TEST_TMPDIR="$W" timeout 40 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_filter='BM_DecodeStackReplay/batch:(1|64)/pdl:1/k:0/copy:0/cluster:0/hidden:4096/' --benchmark_out="$R/decode_call7.json" --benchmark_out_format=json > "$R/decode_call7.log" 2>&1
echo "decode exit $? $(el)" >> "$L"
grep -E "^BM_" "$R/decode_call7.log" | head -6 >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
cat "$L"
