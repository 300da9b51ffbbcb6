# Session 25 call 2: memcheck, racecheck and initcheck on kernels_cuda_test (HEAD 5b8cdab's
# kernels, bundle verifyA), the plain run first (run_all.sh --sanitize).
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/verifyA.tar.xz -C "$W" && B="$W/verifyA"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== sanitize $(el)" > "$L"
NORMGRAPH_SWEEP_CASES=12 RUN_ALL_TIMEOUT=200 RUN_ALL_SANITIZE_TIMEOUT=200 timeout 560 "$B/run_all.sh" --sanitize --filter kernels_cuda_test --out "$W/san" --no-gpu-check >> "$L" 2>&1
echo "sanitize exit $? $(el)" >> "$L"; cp "$W/san/summary.txt" "$R/sanitize.txt" 2>/dev/null
tar xzf "$W/san/logs.tar.gz" -C "$W/san" 2>/dev/null; grep -rhE "(ERROR|RACECHECK) SUMMARY" "$W/san" >> "$L" 2>/dev/null
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -20
