#!/usr/bin/env bash
# Device call 2 (from the repository root): the CUDA verdicts over the corpus (call 1's run timed
# out with one non-OK verdict), traces of the non-OK inputs on CUDA and CPU, the GPU tests under
# compute-sanitizer, and the second half of the GPU and sanitized CPU campaigns. At most 8 files
# come back: everything is packed.
set -u
ROOT=$PWD
SECS=${SECS:-430}
cd .gpu && tar xJf all.tar.xz && mkdir -p prev && tar xzf prev_corpus.tgz -C prev; cd "$ROOT"
export LD_LIBRARY_PATH="$ROOT/.gpu/fz/lib:${LD_LIBRARY_PATH:-}"
S="$OUT/summary.txt"
mkdir -p /tmp/res/cpu /tmp/res/gpu /tmp/res/traces
python3 tools/fuzz_campaign.py --no-build --bin-dir=.gpu/san --targets=graph_replay_fuzzer \
  --fork=8 --time=$SECS --json=/tmp/res/cpu/cpu_graph_replay2.json > /tmp/res/cpu/cpu_graph_replay2.log 2>&1 &
for w in 1 2; do
  mkdir -p .gpu/gpucorpus2_w$w
  NORMGRAPH_FUZZ_DEVICE=cuda timeout $((SECS + 40)) .gpu/cf/graph_replay_fuzzer -seed=$((20 + w)) \
    -max_total_time=$SECS -dict=fuzz/graph_replay_fuzzer.dict -max_len=1024 -len_control=20 \
    -print_final_stats=1 -artifact_prefix=/tmp/res/gpu/crash-w$w- \
    .gpu/gpucorpus2_w$w .gpu/prev/gpucorpus_w1 .gpu/prev/gpucorpus_w2 fuzz/corpus/graph_replay_fuzzer \
    > /tmp/res/gpu/gpu_fuzz2_w$w.log 2>&1 &
done
(NORMGRAPH_SWEEP_CASES=12 RUN_ALL_SANITIZE_TIMEOUT=200 timeout $((SECS + 20)) .gpu/fz/run_all.sh --sanitize \
  --filter '//(graph|layers|core|audit|tools)' --out /tmp/res/sanitize --compact > /tmp/res/sanitize.log 2>&1
 echo "sanitize rc=$?" >> /tmp/res/sanitize.log) &
NORMGRAPH_FUZZ_DEVICE=cuda timeout 240 .gpu/fz/bin/fuzz/verdicts fuzz/corpus/graph_replay_fuzzer > "$OUT/verdicts_cuda.txt" 2> /tmp/res/traces/verdicts.err
echo "verdicts rc=$? non-OK=$(grep -vc ': OK$' "$OUT/verdicts_cuda.txt") of $(wc -l < "$OUT/verdicts_cuda.txt")" >> "$S"
grep -v ': OK$' "$OUT/verdicts_cuda.txt" | head -5 >> "$S"
n=0
for f in $(grep -v ': OK$' "$OUT/verdicts_cuda.txt" | cut -d: -f1 | head -3); do
  n=$((n + 1)); mkdir -p /tmp/one$n; cp fuzz/corpus/graph_replay_fuzzer/$f /tmp/one$n/
  NORMGRAPH_FUZZ_TRACE=1 NORMGRAPH_FUZZ_DEVICE=cuda timeout 40 .gpu/fz/bin/fuzz/verdicts /tmp/one$n > /tmp/res/traces/$f.cuda.txt 2>&1
  NORMGRAPH_FUZZ_TRACE=1 timeout 40 .gpu/fz/bin/fuzz/verdicts /tmp/one$n > /tmp/res/traces/$f.cpu.txt 2>&1
  echo "rerun $f: cuda $(tail -1 /tmp/res/traces/$f.cuda.txt | cut -c1-300) | cpu $(tail -1 /tmp/res/traces/$f.cpu.txt | cut -c1-200)" >> "$S"
done
# The harness on CUDA under memcheck: 40 corpus inputs, wide rows among them.
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
mkdir -p /tmp/sub && ls fuzz/corpus/graph_replay_fuzzer | awk 'NR % 17 == 1' | head -40 | while read f; do cp fuzz/corpus/graph_replay_fuzzer/$f /tmp/sub/; done
cp fuzz/corpus/graph_replay_fuzzer/seed_wide_rows_* /tmp/sub/
NORMGRAPH_FUZZ_DEVICE=cuda timeout 150 $CS --tool memcheck --error-exitcode=1 .gpu/fz/bin/fuzz/verdicts /tmp/sub > /tmp/res/traces/memcheck_verdicts.txt 2>&1
echo "memcheck verdicts rc=$? ($(ls /tmp/sub | wc -l) inputs): $(grep -c ': OK$' /tmp/res/traces/memcheck_verdicts.txt) OK; $(grep -E 'ERROR SUMMARY' /tmp/res/traces/memcheck_verdicts.txt)" >> "$S"
wait
for w in 1 2; do echo "gpu2 w$w: $(grep -E 'stat::number_of_executed_units|stat::new_units_added|Done|ERROR|SUMMARY' /tmp/res/gpu/gpu_fuzz2_w$w.log | tr '\n' ' ')" >> "$S"; done
tail -n 3 /tmp/res/cpu/cpu_graph_replay2.log >> "$S"
tail -n 30 /tmp/res/sanitize.log >> "$S"
tar czf "$OUT/traces.tgz" -C /tmp/res traces
tar czf "$OUT/sanitize.tgz" -C /tmp/res sanitize sanitize.log
tar czf "$OUT/cpu.tgz" -C /tmp/res cpu
tar czf "$OUT/gpu_logs.tgz" -C /tmp/res gpu
tar czf "$OUT/gpu_corpus2.tgz" -C .gpu gpucorpus2_w1 gpucorpus2_w2
cat "$S"
