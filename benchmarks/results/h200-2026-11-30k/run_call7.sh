# Session 29 call 7 (bundle .gpu/s29g, the session's final code): every GPU test binary
# (kernels_cuda_test with the column-slice test), the main job on CUDA with and without the
# pre-fix loader.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/s29g.tar.xz -C "$W" && B="$W/s29g"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
RUN_ALL_TIMEOUT=220 timeout 300 "$B/run_all.sh" --out "$W/tests" --no-gpu-check > "$R/run_all.txt" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null; cat "$R/gpu_tests.txt" >> "$L" 2>/dev/null
mkdir -p "$R/test_logs" && tar xzf "$W/tests/logs.tar.gz" -C "$R/test_logs" 2>/dev/null
grep -rhE "^\[  FAILED|Failure|bit-identical" "$R/test_logs" | head -40 >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
NG=$(find "$B/bin" -type f -name normgraph | head -1)
echo "main job binary: $NG" >> "$L"
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $? $(el)" >> "$L"; timeout 60 "$NG" --device=cuda --inject=legacy-loader --cycles=2 > "$R/main_job_cuda_legacy.txt" 2>&1; echo "main job (legacy loader) exit $? $(el)" >> "$L")
tail -3 "$R/main_job_cuda.txt" >> "$L"; tail -7 "$R/main_job_cuda_legacy.txt" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
cat "$L"
