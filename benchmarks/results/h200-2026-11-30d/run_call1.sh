# Session 22 call 1: GPU tests of the FMA exponential (commit 0ff3e1b), sanitizers,
# the gated A/B (base = b84031e, fma = 0ff3e1b, fma2 = knob silu.h), the main job.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/c22.tar.xz -C "$W" && B="$W/c22"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== silu checks $(el)" > "$L"
for v in base fma fma2; do timeout 30 .gpu/c22ab/ab_$v check >> "$R/silu_checks.txt" 2>&1; done
cat "$R/silu_checks.txt" >> "$L"
echo "== tests $(el)" >> "$L"
RUN_ALL_TIMEOUT=150 timeout 240 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
echo "== gated A/B $(el)" >> "$L"
for round in 1 2; do for v in base fma fma2; do timeout 60 .gpu/c22ab/ab_$v >> "$R/gated_ab.txt" 2>&1; done; done
echo "ab done $(el)" >> "$L"
echo "== main job $(el)" >> "$L"
(cd "$B/runfiles/"* && timeout 60 "$B/bin/tools/normgraph" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $?" >> "$L")
echo "== sanitizers $(el)" >> "$L"
NORMGRAPH_SWEEP_CASES=12 RUN_ALL_TIMEOUT=150 RUN_ALL_SANITIZE_TIMEOUT=120 timeout 330 "$B/run_all.sh" --sanitize --filter 'kernels_cuda_test|silu_test|inv_rms_test|packed_arithmetic_test' --out "$W/san" --no-gpu-check >> "$L" 2>&1
echo "sanitize exit $? $(el)" >> "$L"; cp "$W/san/summary.txt" "$R/sanitize_summary.txt" 2>/dev/null
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r tests/summary.txt san/summary.txt 2>/dev/null
cp "$R"/*.txt "$OUT"/ 2>/dev/null
grep -v "^====" "$L" | tail -40
wc -l "$R/gated_ab.txt"
