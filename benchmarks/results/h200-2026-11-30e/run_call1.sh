# Session 23 call 1: the fast path for rows whose padded tree has empty slots (hidden 1536, ...)
# and the f32 K = 2 fast path. GPU tests, the main job, an A/B of BM_Norm/ (old: the 1c497b4-code
# binary of session 22, new: this bundle; two rounds, interleaved), then the record run
# (graph benchmark, peers).
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$R/nvidia-smi.txt" 2>&1
tar xJf .gpu/s23a.tar.xz -C "$W" && B="$W/s23a"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== tests $(el)" > "$L"
RUN_ALL_TIMEOUT=150 timeout 200 "$B/run_all.sh" --out "$W/tests" --no-gpu-check >> "$L" 2>&1
echo "tests exit $? $(el)" >> "$L"; cp "$W/tests/summary.txt" "$R/gpu_tests.txt" 2>/dev/null
echo "== main job $(el)" >> "$L"
NG=$(find "$B" -type f -name normgraph -perm -u+x | head -1); echo "main job binary: $NG" >> "$L"
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --cycles=3 > "$R/main_job_cuda.txt" 2>&1; echo "main job exit $?" >> "$L")
(cd "$B/runfiles/"* && timeout 60 "$NG" --device=cuda --model=gemma3 --inject=legacy-loader --cycles=2 > "$R/main_job_cuda_gemma3_legacy.txt" 2>&1; echo "main job (gemma3, legacy loader) exit $?" >> "$L")
echo "== A/B $(el)" >> "$L"
for round in 1 2; do
  for which in old new; do
    BIN="$B/bin/benchmarks/cuda_norm_benchmark"; [ "$which" = old ] && BIN="$B/old/cuda_norm_benchmark"
    (cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 100 "$BIN" --benchmark_filter='BM_Norm/' --benchmark_out="$R/ab_${which}_r${round}.json" --benchmark_out_format=json > "$R/ab_${which}_r${round}.log" 2>&1)
    echo "$which round $round exit $? $(el)" >> "$L"
  done
done
cp "$R/ab_new_r2.json" "$R/cuda_norm_benchmark.json"
echo "== graph benchmark $(el)" >> "$L"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 90 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_out="$R/cuda_graph_benchmark.json" --benchmark_out_format=json > "$R/graph_bench.log" 2>&1)
echo "graph benchmark exit $? $(el)" >> "$L"
echo "== peers $(el)" >> "$L"
timeout 200 python3 tools/bench/peers.py --budget-s 150 --out "$R/peers.json" > "$R/peers.log" 2>&1
echo "peers exit $? $(el)" >> "$L"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' > "$R/versions.txt" 2>&1
echo "== done $(el)" >> "$L"
tar czf "$OUT/results.tar.gz" -C "$W" r
grep -v "^====" "$L" | tail -32
for n in 'rms/bf16/prefill/rows:4096/hidden:1536' 'rms/bf16/prefill/rows:32768/hidden:1536' 'rms/bf16/prefill/rows:32768/hidden:4096' 'rms/f32/prefill/rows:4096/hidden:4096' 'rms/f32/prefill/rows:4096/hidden:1536'; do
  for f in "$R"/ab_*_r*.log; do echo "$(basename $f) $(grep -E "BM_Norm/$n/" $f | awk '{print $2}')"; done | tr '\n' ' '; echo " <- $n"
done
grep -E 'DecodeStackReplay/batch:(1|8|64)/pdl:1/k:0/copy:0/cluster:0' "$R/graph_bench.log" | awk '{print $1, $2}'
