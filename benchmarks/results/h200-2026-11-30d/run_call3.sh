# Session 22 call 3: gated K = 4 knobs: register caps (m96, np80: no pipeline + 80), Estrin
# polynomial (a different definition: a speed probe), against cur (commit 21c0ca5's kernels).
set -u
R=$(mktemp -d)
for v in cur m96 np80 estrin estrin_m96; do timeout 30 .gpu/c22ab2/ab_$v check >> "$R/checks.txt" 2>&1; done
for round in 1 2; do for v in cur m96 np80 estrin estrin_m96; do timeout 60 .gpu/c22ab2/ab_$v >> "$R/ab.txt" 2>&1; done; done
cp "$R"/*.txt "$OUT"/
cat "$R/checks.txt"; wc -l "$R/ab.txt"
