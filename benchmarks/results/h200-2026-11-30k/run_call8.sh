# Session 29 call 8 (bundle .gpu/s29h, HEAD after the CLI/loader fixes): checkpoint_dir_test_cuda,
# weights_test_cuda and the main job on CUDA (with and without the pre-fix loader, and --json).
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/s29h.tar.xz -C "$W" && B="$W/s29h"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
RUN_ALL_TIMEOUT=60 timeout 100 "$B/run_all.sh" --out "$W/tests" --no-gpu-check > "$R/run_all.txt" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null; cat "$R/gpu_tests.txt" >> "$L" 2>/dev/null
NG=$(find "$B/bin" -type f -name normgraph | head -1)
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $? $(el)" >> "$L"; timeout 60 "$NG" --device=cuda --inject=legacy-loader --cycles=2 --json > "$R/main_job_cuda_legacy.json" 2>"$R/main_job_cuda_legacy.err"; echo "main job (legacy loader, json) exit $? $(el)" >> "$L")
tail -2 "$R/main_job_cuda.txt" >> "$L"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("json ok", j["ok"], j["exit_code"])' "$R/main_job_cuda_legacy.json" >> "$L" 2>&1
tar czf "$OUT/results.tar.gz" -C "$W" r
cat "$L"
