# Session 28 call 1: the bf16 silu table of the gated prefill kernels. GPU tests (kernels, silu,
# packed arithmetic, inv rms, norms, stacks), memcheck + racecheck on the new every-bf16-gate test,
# BM_Norm/gated/ of the previous kernels (bundle of 37733bd) and of this change interleaved three
# times, then the gated peers (torch eager, HF, torch.compile) in the same call.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/tab1.tar.xz -C "$W" && B="$W/tab1"
tar xJf .gpu/old_bench.tar.xz -C "$W" && OLD="$W/old/bin/cuda_norm_benchmark"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
save() { tar czf "$OUT/results.tar.gz" -C "$W" r; }
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=200 timeout 270 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
mkdir -p "$R/test_logs" && tar xzf "$W/tests/logs.tar.gz" -C "$R/test_logs" 2>/dev/null
grep -rhE "^\[  FAILED|Failure|bit-identical|mismatch" "$R/test_logs" | head -40 >> "$L"
save
echo "== A/B $(el)" >> "$L"
cd "$B/runfiles/"*
for round in 1 2 3; do
  for v in old new; do
    BIN="$B/bin/benchmarks/cuda_norm_benchmark"; [ $v = old ] && BIN="$OLD"
    TEST_TMPDIR="$W" timeout 90 "$BIN" --benchmark_filter='BM_Norm/gated/' --benchmark_out="$R/ab_${v}_$round.json" --benchmark_out_format=json > "$R/ab_${v}_$round.log" 2>&1
    echo "ab $v $round exit $? $(el)" >> "$L"
  done
done
cd - > /dev/null
save
echo "== sanitizers $(el)" >> "$L"
(cd "$B/runfiles/"* && timeout 90 compute-sanitizer --tool memcheck --error-exitcode=1 "$B/bin/kernels/cuda/kernels_cuda_test" --gtest_filter='*EveryBf16Gate*' > "$R/memcheck_gate.txt" 2>&1; echo "memcheck exit $? $(el)" >> "$L")
(cd "$B/runfiles/"* && timeout 120 compute-sanitizer --tool racecheck --error-exitcode=1 "$B/bin/kernels/cuda/kernels_cuda_test" --gtest_filter='*EveryBf16Gate*' > "$R/racecheck_gate.txt" 2>&1; echo "racecheck exit $? $(el)" >> "$L")
tail -3 "$R/memcheck_gate.txt" "$R/racecheck_gate.txt" >> "$L"
save
echo "== peers $(el)" >> "$L"
timeout 170 python3 tools/bench/peers.py --variants gated --budget-s 110 --out "$R/peers_gated.json" > "$R/peers.log" 2>&1
echo "peers exit $? $(el)" >> "$L"
echo "== done $(el)" >> "$L"
save
grep -v "^====" "$L" | tail -45
