# Session 23 call 4: spread decode launches (kernels.cu SpreadLaunch: PDL above 16 row groups,
# one CTA an SM through unused dynamic shared memory). GPU tests (kernels_cuda_test with the
# sanitizers, norm_stacks_test_cuda, incident_test_cuda), the main job, then cuda_graph_benchmark
# with spreading on (the default) and off (NORMGRAPH_CUDA_SPREAD=0), twice each, interleaved.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/s23d.tar.xz -C "$W" && B="$W/s23d"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=150 timeout 200 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests_call4.txt" 2>/dev/null
tar xzf "$W/tests/logs.tar.gz" -C "$W/tests" 2>/dev/null; grep -rh "layout cases bit-identical" "$W/tests" | head -2 >> "$L"
echo "== main job $(el)" >> "$L"
NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1)
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda_call4.txt" 2>&1; echo "main job exit $?" >> "$L")
echo "== graph benchmark $(el)" >> "$L"
for round in 1 2; do
  for spread in 1 0; do
    (cd "$B/runfiles/"* && NORMGRAPH_CUDA_SPREAD=$spread TEST_TMPDIR="$W" timeout 90 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_filter='DecodeStackReplay' --benchmark_out="$R/graph_spread${spread}_r${round}.json" --benchmark_out_format=json > "$R/graph_spread${spread}_r${round}.log" 2>&1)
    echo "graph spread=$spread round $round exit $? $(el)" >> "$L"
  done
done
NORMGRAPH_SWEEP_CASES=12 RUN_ALL_SANITIZE_TIMEOUT=200 timeout 260 "$B/run_all.sh" --sanitize --filter kernels_cuda_test --out "$W/san" --no-gpu-check >> "$L" 2>&1
echo "sanitize exit $? $(el)" >> "$L"; cp "$W/san/summary.txt" "$R/sanitize_call4.txt" 2>/dev/null
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -24
for f in "$R"/graph_spread*_r*.log; do echo "== $(basename $f)"; grep -E "DecodeStackReplay/batch:(1|16|32|64)/pdl:1/k:0/copy:0/cluster:0/hidden:4096|GatedDecodeStackReplay" $f | awk '{print $1, $2}'; done
