# Session 28 call 4: every GPU test of the final code (the silu table with its throughput rule),
# compute-sanitizer (memcheck, racecheck, initcheck) on the silu-table tests, the main job on CUDA.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/fin.tar.xz -C "$W" && B="$W/fin"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
save() { tar czf "$OUT/results.tar.gz" -C "$W" r; }
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=220 timeout 330 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
mkdir -p "$R/test_logs" && tar xzf "$W/tests/logs.tar.gz" -C "$R/test_logs" 2>/dev/null
grep -rhE "^\[  FAILED|Failure|bit-identical|mismatch" "$R/test_logs" | head -40 >> "$L"
save
cd "$B/runfiles/"*
for tool in memcheck racecheck initcheck; do
  timeout 80 compute-sanitizer --tool $tool --error-exitcode=1 "$B/bin/kernels/cuda/kernels_cuda_test" --gtest_filter='*EveryBf16Gate*:*SiluTable*' > "$R/${tool}_silu_table.txt" 2>&1
  echo "$tool exit $? $(el)" >> "$L"
  tail -n 2 "$R/${tool}_silu_table.txt" >> "$L"
done
NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1)
timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $? $(el)" >> "$L"
echo "== done $(el)" >> "$L"
save
grep -v "^====" "$L" | tail -50
