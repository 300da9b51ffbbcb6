# Session 25 call 1: the register/fast-path A/B (regs_ab_*: one binary per variant, run twice,
# forward and reverse order), then HEAD's GPU tests (kernels_cuda_test, norm_stacks_test_cuda,
# incident_test_cuda, cuda_stream_test) and the main job.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
ls /usr/local/cuda*/bin 2>&1 | head -60 > "$R/cuda_bin.txt"; which cuobjdump nvdisasm ncu >> "$R/cuda_bin.txt" 2>&1
echo "== A/B $(el)" > "$L"
tar xJf .gpu/ab.tar.xz -C "$W"; A="$W/ab"
V="base r64 r80 r96 fast fast_r80 fast_r96"
for v in $V; do timeout 60 "$A"/regs_ab_$v >> "$R/regs_ab.txt" 2>&1 || echo "$v exit $?" >> "$L"; done
for v in $(echo $V | tr ' ' '\n' | tac); do timeout 60 "$A"/regs_ab_$v >> "$R/regs_ab2.txt" 2>&1 || echo "$v exit $?" >> "$L"; done
echo "A/B done $(el)" >> "$L"
CO=$(which cuobjdump 2>/dev/null || ls /usr/local/cuda*/bin/cuobjdump 2>/dev/null | head -1)
[ -n "$CO" ] && "$CO" -sass "$A"/regs_ab_base > "$R/regs_ab_base.sass" 2>&1
tar czf "$OUT/results.tar.gz" -C "$W" r
tar xJf .gpu/verifyA.tar.xz -C "$W" && B="$W/verifyA"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" >> "$L"
RUN_ALL_TIMEOUT=200 timeout 230 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
tar xzf "$W/tests/logs.tar.gz" -C "$W/tests" 2>/dev/null; grep -rh "bit-identical" "$W/tests" | head -4 >> "$L"
NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1)
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $?" >> "$L")
tar czf "$OUT/results.tar.gz" -C "$W" r
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -30
grep -h "round 1" "$R/regs_ab.txt" | cut -c1-80
