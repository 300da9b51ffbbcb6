#!/usr/bin/env bash
# Device call 3 (from the repository root): the third segment of the sanitized CPU campaign (14
# of the host's 16 cores) and of the GPU campaign (2 in-process workers on CUDA graphs, from the
# corpora of the first two segments). At most 8 files come back.
set -u
ROOT=$PWD
SECS=${SECS:-500}
cd .gpu && tar xJf all.tar.xz && mkdir -p prev && tar xzf prev_corpus.tgz -C prev && tar xzf prev_corpus2.tgz -C prev; cd "$ROOT"
export LD_LIBRARY_PATH="$ROOT/.gpu/fz/lib:${LD_LIBRARY_PATH:-}"
S="$OUT/summary.txt"
mkdir -p /tmp/res/cpu /tmp/res/gpu
python3 tools/fuzz_campaign.py --no-build --bin-dir=.gpu/san --targets=graph_replay_fuzzer \
  --fork=12 --time=$SECS --json=/tmp/res/cpu/cpu_graph_replay3.json > /tmp/res/cpu/cpu_graph_replay3.log 2>&1 &
python3 tools/fuzz_campaign.py --no-build --bin-dir=.gpu/san --targets=safetensors_fuzzer,cpu_kernel_fuzzer \
  --fork=2 --time=$SECS --json=/tmp/res/cpu/cpu_others3.json > /tmp/res/cpu/cpu_others3.log 2>&1 &
for w in 1 2; do
  mkdir -p .gpu/gpucorpus3_w$w
  NORMGRAPH_FUZZ_DEVICE=cuda timeout $((SECS + 40)) .gpu/cf/graph_replay_fuzzer -seed=$((30 + w)) \
    -max_total_time=$SECS -dict=fuzz/graph_replay_fuzzer.dict -max_len=1024 -len_control=20 \
    -print_final_stats=1 -artifact_prefix=/tmp/res/gpu/crash-w$w- \
    .gpu/gpucorpus3_w$w .gpu/prev/gpucorpus_w1 .gpu/prev/gpucorpus_w2 .gpu/prev/gpucorpus2_w1 \
    .gpu/prev/gpucorpus2_w2 fuzz/corpus/graph_replay_fuzzer > /tmp/res/gpu/gpu_fuzz3_w$w.log 2>&1 &
done
wait
for w in 1 2; do echo "gpu3 w$w: $(grep -E 'stat::number_of_executed_units|stat::new_units_added|Done|ERROR|SUMMARY' /tmp/res/gpu/gpu_fuzz3_w$w.log | tr '\n' ' ')" >> "$S"; done
tail -n 3 /tmp/res/cpu/cpu_graph_replay3.log /tmp/res/cpu/cpu_others3.log >> "$S"
tar czf "$OUT/cpu.tgz" -C /tmp/res cpu
tar czf "$OUT/gpu_logs.tgz" -C /tmp/res gpu
tar czf "$OUT/gpu_corpus3.tgz" -C .gpu gpucorpus3_w1 gpucorpus3_w2
cat "$S"
