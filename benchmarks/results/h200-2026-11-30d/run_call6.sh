# Session 22 call 6: gated decode chains (per value head and whole rows), PDL on/off, narrow
# (product registers) vs wide (__maxnreg__(96)).
set -u
R=$(mktemp -d)
for round in 1 2; do for v in narrow wide; do timeout 60 .gpu/c22ab3/ab_$v >> "$R/chain_ab.txt" 2>&1; done; done
cp "$R"/*.txt "$OUT"/
wc -l "$R/chain_ab.txt"; head -3 "$R/chain_ab.txt"
