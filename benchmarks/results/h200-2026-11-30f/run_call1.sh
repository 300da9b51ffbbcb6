# Session 24 call 1: HEAD (b096fd9) GPU tests not run since the spread launches landed:
# norms_test_cuda, captured_graph_test_cuda, check_fast_path_test_cuda,
# replay_allocation_test_cuda, cuda_stream_test, and the small GPU tests.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/testsA.tar.xz -C "$W" && B="$W/testsA"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=200 timeout 400 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
cp "$W/tests/logs.tar.gz" "$R/test_logs.tar.gz" 2>/dev/null
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -30
