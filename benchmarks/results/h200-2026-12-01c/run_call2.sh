#!/usr/bin/env bash
# Device call 2 (from the repository root), after the review fixes (identity snapshot coverage,
# BucketedGraphs::Run's up-front checks, small files, Narrow of empty tensors): every GPU test
# binary, the CUDA harness's verdicts over the corpus, and the graph tests under compute-sanitizer.
set -u
ROOT=$PWD
cd .gpu && tar xJf g2.tar.xz; cd "$ROOT"
export LD_LIBRARY_PATH="$ROOT/.gpu/g2/lib:${LD_LIBRARY_PATH:-}"
S="$OUT/summary.txt"
NORMGRAPH_FUZZ_DEVICE=cuda timeout 240 .gpu/g2/bin/fuzz/verdicts fuzz/corpus/graph_replay_fuzzer > "$OUT/verdicts_cuda.txt" 2> /tmp/verdicts.err &
V=$!
timeout 300 .gpu/g2/run_all.sh --out /tmp/tests --compact > /tmp/tests.log 2>&1
echo "tests rc=$?" >> "$S"; tail -30 /tmp/tests.log >> "$S"
wait $V; echo "verdicts rc=$? non-OK=$(grep -vc ': OK$' "$OUT/verdicts_cuda.txt") of $(wc -l < "$OUT/verdicts_cuda.txt")" >> "$S"
grep -v ': OK$' "$OUT/verdicts_cuda.txt" | head -5 | cut -c1-600 >> "$S"
NORMGRAPH_SWEEP_CASES=12 timeout 170 .gpu/g2/run_all.sh --sanitize --filter '//graph' --out /tmp/san --compact > /tmp/san.log 2>&1
echo "sanitize rc=$?" >> "$S"; tail -30 /tmp/san.log >> "$S"
tar czf "$OUT/logs.tgz" -C /tmp tests.log san.log verdicts.err tests san 2>/dev/null
cat "$S"
