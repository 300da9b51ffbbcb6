# Session 28 call 6: kernels_cuda_test of the final code in full (with the every-bf16-gate test's
# per-case table expectation), silu_test.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/kt.tar.xz -C "$W" && B="$W/kt"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cd "$B/runfiles/"*
timeout 230 "$B/bin/kernels/cuda/kernels_cuda_test" > "$R/kernels_cuda_test_call6.txt" 2>&1
echo "kernels_cuda_test exit $? $(el)" >> "$L"
timeout 60 "$B/bin/kernels/cuda/silu_test" > "$R/silu_test_call6.txt" 2>&1
echo "silu_test exit $? $(el)" >> "$L"
grep -hE "^\[  FAILED|Failure|bit-identical|PASSED|mismatches" "$R"/*.txt >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
cat "$L"
