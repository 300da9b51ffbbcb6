# Session 24 call 4: the rest of the GPU tests on the final code (incident_test_cuda,
# module_test_cuda, checkpoint_dir_test_cuda, c_api_test, captured_graph_test_cuda,
# kernels_cuda_test), then memcheck, racecheck and initcheck on kernels_cuda_test.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/testsC.tar.xz -C "$W" && B="$W/testsC"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=200 timeout 230 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
tar czf "$OUT/results.tar.gz" -C "$W" r
NORMGRAPH_SWEEP_CASES=12 RUN_ALL_SANITIZE_TIMEOUT=200 timeout 420 "$B/run_all.sh" --sanitize --filter kernels_cuda_test --out "$W/san" --no-gpu-check >> "$L" 2>&1
echo "sanitize exit $? $(el)" >> "$L"; cp "$W/san/summary.txt" "$R/sanitize.txt" 2>/dev/null
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -30
