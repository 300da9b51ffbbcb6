#!/usr/bin/env bash
# Device call 1 (from the repository root), the nineteenth session's harness (the norm model,
# replay bursts, write versions, special values, deep models, checkpoint-file options): every GPU
# test binary, the CUDA harness's verdicts over the corpus, an in-process libFuzzer campaign on
# CUDA graphs (2 workers) and a sanitized CPU campaign on the host's other cores, side by side.
set -u
ROOT=$PWD
SECS=${SECS:-360}
cd .gpu && tar xJf all4.tar.xz; cd "$ROOT"
S="$OUT/summary.txt"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$S" 2>&1
export LD_LIBRARY_PATH="$ROOT/.gpu/g4/lib:${LD_LIBRARY_PATH:-}"
L=/tmp/logs; mkdir -p $L/gpu_crashes
python3 tools/fuzz_campaign.py --no-build --bin-dir=.gpu/san --targets=graph_replay_fuzzer \
  --fork=11 --time=$SECS --json="$OUT/cpu_graph_replay.json" > $L/cpu_graph_replay.log 2>&1 &
if [ -x .gpu/cf/graph_replay_fuzzer ]; then
  for w in 1 2; do
    mkdir -p .gpu/gpucorpus_w$w
    NORMGRAPH_FUZZ_DEVICE=cuda timeout $((SECS + 40)) .gpu/cf/graph_replay_fuzzer -seed=$((50 + w)) \
      -max_total_time=$SECS -dict=fuzz/graph_replay_fuzzer.dict -max_len=1024 -len_control=20 \
      -print_final_stats=1 -artifact_prefix=$L/gpu_crashes/w$w- \
      .gpu/gpucorpus_w$w fuzz/corpus/graph_replay_fuzzer > $L/gpu_fuzz_w$w.log 2>&1 &
  done
fi
timeout 200 .gpu/g4/run_all.sh --out $L/tests --compact > $L/tests.log 2>&1
echo "tests rc=$?" >> "$S"; tail -25 $L/tests.log >> "$S"
NORMGRAPH_FUZZ_DEVICE=cuda timeout 300 .gpu/g4/bin/fuzz/verdicts fuzz/corpus/graph_replay_fuzzer > "$OUT/verdicts_cuda.txt" 2> $L/verdicts.err
echo "verdicts rc=$? non-OK=$(grep -vc ': OK$' "$OUT/verdicts_cuda.txt") of $(wc -l < "$OUT/verdicts_cuda.txt")" >> "$S"
grep -v ': OK$' "$OUT/verdicts_cuda.txt" | head -5 | cut -c1-600 >> "$S"
wait
for w in 1 2; do echo "gpu w$w: $(grep -E 'stat::number_of_executed_units|stat::new_units_added|Done|ERROR|SUMMARY|oracle' $L/gpu_fuzz_w$w.log 2>/dev/null | tr '\n' ' ' | cut -c1-1200)" >> "$S"; done
ls $L/gpu_crashes >> "$S"
tail -4 $L/cpu_graph_replay.log >> "$S"
tar czf "$OUT/logs.tgz" -C /tmp logs
cat "$S"
