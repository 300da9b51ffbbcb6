#!/usr/bin/env bash
# One device call (from the repository root): GPU tests, the graph-replay harness on CUDA (corpus
# verdicts, then an in-process libFuzzer campaign on the GPU), and a sanitized CPU campaign on the
# host's other cores, side by side.
set -u
ROOT=$PWD
PHASE=${PHASE:-1}
SECS=${SECS:-480}
cd .gpu && tar xJf all.tar.xz; cd "$ROOT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader > "$OUT/gpu.txt" 2>&1
nproc >> "$OUT/gpu.txt"
export LD_LIBRARY_PATH="$ROOT/.gpu/fz/lib:${LD_LIBRARY_PATH:-}"
# Sanitized CPU campaigns (libFuzzer + ASan + UBSan), 12 workers in all.
python3 tools/fuzz_campaign.py --no-build --bin-dir=.gpu/san --targets=graph_replay_fuzzer \
  --fork=10 --time=$SECS --json="$OUT/cpu_graph_replay.json" > "$OUT/cpu_graph_replay.log" 2>&1 &
python3 tools/fuzz_campaign.py --no-build --bin-dir=.gpu/san --targets=safetensors_fuzzer,cpu_kernel_fuzzer \
  --fork=2 --time=$SECS --json="$OUT/cpu_others.json" > "$OUT/cpu_others.log" 2>&1 &
# The GPU campaign: the harness on CUDA graphs, unsanitized libFuzzer, in process, 2 workers.
mkdir -p "$OUT/gpu_crashes"
for w in 1 2; do
  mkdir -p .gpu/gpucorpus_w$w
  [ -d .gpu/prev_corpus ] && PREV=.gpu/prev_corpus || PREV=
  NORMGRAPH_FUZZ_DEVICE=cuda timeout $((SECS + 40)) .gpu/cf/graph_replay_fuzzer -seed=$((PHASE * 10 + w)) \
    -max_total_time=$SECS -dict=fuzz/graph_replay_fuzzer.dict -max_len=1024 -len_control=20 \
    -print_final_stats=1 -artifact_prefix="$OUT/gpu_crashes/w$w-" \
    .gpu/gpucorpus_w$w fuzz/corpus/graph_replay_fuzzer $PREV > "$OUT/gpu_fuzz_w$w.log" 2>&1 &
done
if [ "$PHASE" = 1 ]; then
  timeout 420 .gpu/fz/run_all.sh --out "$OUT/tests" --compact > "$OUT/tests.log" 2>&1
  echo "tests rc=$?" >> "$OUT/summary.txt"
  NORMGRAPH_FUZZ_DEVICE=cuda timeout 60 .gpu/fz/bin/fuzz/verdicts fuzz/corpus/graph_replay_fuzzer > "$OUT/verdicts.txt" 2> "$OUT/verdicts.err"
  echo "verdicts rc=$? non-OK=$(grep -vc ': OK$' "$OUT/verdicts.txt") of $(wc -l < "$OUT/verdicts.txt")" >> "$OUT/summary.txt"
else
  NORMGRAPH_SWEEP_CASES=12 timeout $((SECS - 20)) .gpu/fz/run_all.sh --sanitize --out "$OUT/sanitize" --compact > "$OUT/sanitize.log" 2>&1
  echo "sanitize rc=$?" >> "$OUT/summary.txt"
fi
wait
tar czf "$OUT/gpu_corpus.tgz" -C .gpu gpucorpus_w1 gpucorpus_w2
for w in 1 2; do echo "gpu w$w: $(grep -E 'stat::number_of_executed_units|stat::new_units_added|Done|ERROR|SUMMARY' "$OUT/gpu_fuzz_w$w.log" | tr '\n' ' ')" >> "$OUT/summary.txt"; done
tail -3 "$OUT/cpu_graph_replay.log" "$OUT/cpu_others.log" >> "$OUT/summary.txt"
cat "$OUT/summary.txt"; tail -25 "$OUT/tests.log" 2>/dev/null; tail -25 "$OUT/sanitize.log" 2>/dev/null
