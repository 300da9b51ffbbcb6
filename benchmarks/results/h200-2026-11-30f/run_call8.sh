# Session 24 call 8: memcheck, racecheck and initcheck on kernels_cuda_test with the final kernels
# (commit 0ff7cac: the f32 K = 4 forms pipelined again; call 7's bundle).
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/benchD.tar.xz -C "$W" && B="$W/benchD"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
NORMGRAPH_SWEEP_CASES=12 RUN_ALL_SANITIZE_TIMEOUT=120 timeout 240 "$B/run_all.sh" --sanitize --filter kernels_cuda_test --out "$W/san" --no-gpu-check >> "$L" 2>&1
echo "sanitize exit $? $(el)" >> "$L"; cp "$W/san/summary.txt" "$R/sanitize_call8.txt" 2>/dev/null
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -8
