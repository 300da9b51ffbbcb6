# Session 29 call 5: kernels_cuda_test with operands in place, several eps, zero rows and rows
# longer than 16384 (the streaming kernel); memcheck on the long rows and 40 sweep cases.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/s29e.tar.xz -C "$W" && B="$W/s29e"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cd "$B/runfiles/"*
T="$B/bin/kernels/cuda/kernels_cuda_test"
timeout 60 "$T" --gtest_filter='*RowsLongerThan16384*:*RandomShapes*' > "$R/kernels_cuda_test_new.txt" 2>&1
echo "new cases exit $? $(el)" >> "$L"
grep -hE "^\[  FAILED|Failure|bit-identical|PASSED|differs|alias" "$R/kernels_cuda_test_new.txt" | head -30 >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
NORMGRAPH_SWEEP_CASES=40 timeout 150 compute-sanitizer --tool memcheck --error-exitcode=1 "$T" --gtest_filter='*RowsLongerThan16384*:*RandomShapes*' > "$R/memcheck_new.txt" 2>&1
echo "memcheck exit $? $(el)" >> "$L"; tail -n 3 "$R/memcheck_new.txt" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
timeout 200 "$T" > "$R/kernels_cuda_test.txt" 2>&1
echo "kernels_cuda_test exit $? $(el)" >> "$L"
grep -hE "^\[  FAILED|Failure|bit-identical|PASSED" "$R/kernels_cuda_test.txt" | head -30 >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
cat "$L"
