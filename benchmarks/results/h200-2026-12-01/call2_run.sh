#!/usr/bin/env bash
# One device call (run from the repository root): the GPU tests of this session's changes, and
# the graph-replay harness on CUDA (the checked-in corpus with the new seeds, then random inputs).
set -u
ROOT=$PWD
cd .gpu && tar xJf fz.tar.xz && cd "$ROOT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
timeout 60 .gpu/fz/run_all.sh --out "$OUT/tests" --compact > "$OUT/tests.log" 2>&1
echo "tests rc=$?" >> "$OUT/summary.txt"
export LD_LIBRARY_PATH="$ROOT/.gpu/fz/lib:${LD_LIBRARY_PATH:-}"
export NORMGRAPH_FUZZ_DEVICE=cuda
timeout 50 .gpu/fz/bin/fuzz/verdicts fuzz/corpus/graph_replay_fuzzer > "$OUT/verdicts.txt" 2> "$OUT/verdicts.err"
echo "verdicts rc=$? non-OK=$(grep -vc ': OK$' "$OUT/verdicts.txt") of $(wc -l < "$OUT/verdicts.txt")" >> "$OUT/summary.txt"
timeout 50 .gpu/fz/bin/fuzz/throughput 40 random > "$OUT/throughput.txt" 2>&1
echo "throughput rc=$?" >> "$OUT/summary.txt"
cat "$OUT/summary.txt"; tail -5 "$OUT/tests.log"; head -3 "$OUT/throughput.txt"
