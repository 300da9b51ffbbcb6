# Session 26 call 3: the staged kernels (kStagedForm) in the product: kernels_cuda_test and
# norm_stacks_test_cuda, the main job, cuda_norm_benchmark's fused add with NORMGRAPH_CUDA_STAGED=0
# and =1 interleaved (two rounds), then the staged tests under compute-sanitizer.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/stg.tar.xz -C "$W" && B="$W/stg"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=240 timeout 280 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
mkdir -p "$W/tl" && tar xzf "$W/tests/logs.tar.gz" -C "$W/tl" 2>/dev/null; grep -rhE "^\[  FAILED|Failure|bit-identical" "$W/tl" | head -20 >> "$L"
NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1)
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $?" >> "$L")
tar czf "$OUT/results.tar.gz" -C "$W" r
echo "== benchmarks $(el)" >> "$L"
F='BM_Norm/fused_add/(bf16|f16)/prefill/rows:(1024|4096|32768)/hidden:(4096|8192|16384)/'
for round in 1 2; do for st in 0 1; do
  (cd "$B/runfiles/"* && NORMGRAPH_CUDA_STAGED=$st timeout 120 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter="$F" --benchmark_out="$R/cuda_norm_benchmark_staged${st}_round${round}.json" --benchmark_out_format=json > "$R/norm_bench_staged${st}_round${round}.log" 2>&1; echo "bench staged=$st round $round exit $? $(el)" >> "$L")
done; done
tar czf "$OUT/results.tar.gz" -C "$W" r
echo "== sanitizers $(el)" >> "$L"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck initcheck; do
  (cd "$B/runfiles/"* && timeout 100 "$CS" --tool $tool --error-exitcode=1 "$B/bin/kernels/cuda/kernels_cuda_test" --gtest_filter='*Staged*' > "$R/sanitize_$tool.txt" 2>&1; echo "$tool exit $? $(el)" >> "$L")
  tar czf "$OUT/results.tar.gz" -C "$W" r
done
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -40
grep -E "verdict|summary" "$R"/main_job_cuda.txt | head
