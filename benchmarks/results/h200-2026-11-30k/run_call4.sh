# Session 29 call 4: the launch-layout sweep of the gated norm (bf16; K = 1, 2, 4 x block sizes),
# with the silu table (K = 4 only) on and off, twice each, interleaved.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/s29d.tar.xz -C "$W" && B="$W/s29d"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cd "$B/runfiles/"*
for round in 1 2; do
  for t in 1 0; do
    NORMGRAPH_CUDA_SILU_TABLE=$t TEST_TMPDIR="$W" timeout 100 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter='BM_Layout/gated/|BM_Norm/gated/bf16/prefill' --benchmark_out="$R/layout_gated_table${t}_r${round}.json" --benchmark_out_format=json > "$R/layout_gated_table${t}_r${round}.log" 2>&1
    echo "table=$t round $round exit $? $(el)" >> "$L"
  done
  tar czf "$OUT/results.tar.gz" -C "$W" r
done
cat "$L"
python3 - "$R" <<'PY'
import json, sys, glob, statistics, collections
R = sys.argv[1]
t = collections.defaultdict(lambda: collections.defaultdict(list))
for f in sorted(glob.glob(R + "/layout_gated_table*_r*.json")):
    v = f.split("table")[1][0]
    for b in json.load(open(f))["benchmarks"]:
        t[b["name"].split("/iterations")[0]][v].append((b["us_per_call"], b.get("label", "")))
for n, d in t.items():
    on = statistics.median(x for x, _ in d["1"]); off = statistics.median(x for x, _ in d["0"])
    print(f"{n:72s} table {on:8.2f} no-table {off:8.2f}  {d['1'][0][1]}")
PY
