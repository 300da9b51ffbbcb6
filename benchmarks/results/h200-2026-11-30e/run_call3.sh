# Session 23 call 3: GPU tests of commit e64497c's code (with the plan test's fix) that calls 1-2
# did not run (kernels_cuda_test again, norms_test_cuda, norm_stacks_test_cuda,
# incident_test_cuda, captured_graph_test_cuda), and the prototype wide_chain_ab (the usual, wide
# and spread builds of ungated K = 1 chains, PDL on and off; two rounds).
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/s23c.tar.xz -C "$W" && B="$W/s23c"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== prototype $(el)" > "$L"
timeout 150 "$B/proto/wide_chain_ab" > "$R/wide_chain_ab_call3.txt" 2>&1
echo "prototype exit $? $(el)" >> "$L"
echo "== tests $(el)" >> "$L"
RUN_ALL_TIMEOUT=200 timeout 300 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests_call3.txt" 2>/dev/null
tar xzf "$W/tests/logs.tar.gz" -C "$W/tests" 2>/dev/null; grep -rh "layout cases bit-identical" "$W/tests" | head -2 >> "$L"
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -20
cat "$R/wide_chain_ab_call3.txt"
