# Session 26 call 2: the staged-rows A/B, second round (single-buffer st1, more shapes)
# in reverse order).
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
echo "== A/B $(el)" > "$L"
tar xJf .gpu/st.tar.xz -C "$W"; A="$W/st"
V="base st1 st2 st3 st1_r96 st2_r96"
for v in $V; do timeout 60 "$A"/staged_ab_$v >> "$R/staged_ab_call2_pass1.txt" 2>&1 || echo "$v exit $?" >> "$L"; done
tar czf "$OUT/results.tar.gz" -C "$W" r
for v in $(echo $V | tr ' ' '\n' | tac); do timeout 60 "$A"/staged_ab_$v >> "$R/staged_ab_call2_pass2.txt" 2>&1 || echo "$v exit $?" >> "$L"; done
echo "A/B done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
cat "$L"
grep -h "round 1" "$R/staged_ab_call2_pass1.txt" | awk '{print $1, $4, $5, $6}' 
