# Session 25 call 10: the final code (commit c9d0f21: LoadWeights' phase 2 as WriteInPlace):
# weights_test_cuda, checkpoint_dir_test_cuda, cuda_stream_test, the main job on CUDA.
set -u
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"
tar xJf .gpu/finalC.tar.xz -C "$W" && B="$W/finalC"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
RUN_ALL_TIMEOUT=120 timeout 150 "$B/run_all.sh" --out "$W/tests" --no-gpu-check > "$R/log.txt" 2>&1
cp "$W/tests/summary.txt" "$R/gpu_tests_call10.txt"
NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1)
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda_call10.txt" 2>&1; echo "main job exit $?" >> "$R/log.txt")
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -E "PASS|FAIL|tests" "$R/gpu_tests_call10.txt"; tail -1 "$R/log.txt"; grep -E "summary|verdict" "$R/main_job_cuda_call10.txt"
