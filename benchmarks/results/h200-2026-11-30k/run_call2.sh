# Session 29 call 2: the two-pass kernels (kTwoPassForm): kernels_cuda_test (new tests first, then in
# full), an A/B of NORMGRAPH_CUDA_TWO_PASS=0/1 (one binary, interleaved twice), ncu of the two-pass kernel.
set -u
T0=$(date +%s); el() { echo "+$(( $(date +%s) - T0 ))s"; }
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"; L="$R/log.txt"
tar xJf .gpu/s29b.tar.xz -C "$W" && B="$W/s29b"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
save() { tar czf "$OUT/results.tar.gz" -C "$W" r; }
cd "$B/runfiles/"*
timeout 100 "$B/bin/kernels/cuda/kernels_cuda_test" --gtest_filter='*TwoPass*' > "$R/kernels_cuda_test_twopass.txt" 2>&1
echo "two-pass tests exit $? $(el)" >> "$L"
grep -hE "^\[  FAILED|Failure|bit-identical|PASSED" "$R/kernels_cuda_test_twopass.txt" | head -20 >> "$L"
save
F='BM_Norm/(rms|rms_engine|zero_centred|gated)/(bf16|f16)/prefill/rows:(1024|4096|32768)/hidden:(8192|16384)/'
for round in 1 2; do
  for v in 0 1; do
    NORMGRAPH_CUDA_TWO_PASS=$v TEST_TMPDIR="$W" timeout 100 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter="$F" --benchmark_out="$R/ab_tp${v}_r${round}.json" --benchmark_out_format=json > "$R/ab_tp${v}_r${round}.log" 2>&1
    echo "ab two_pass=$v round $round exit $? $(el)" >> "$L"
  done
  save
done
timeout 60 ncu --clock-control none --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats --section MemoryWorkloadAnalysis --kernel-name regex:RmsNorm --launch-skip 3 --launch-count 1 "$B/bin/benchmarks/cuda_norm_benchmark" --benchmark_filter='BM_Norm/zero_centred/bf16/prefill/rows:32768/hidden:16384/' > "$R/ncu_twopass_zc_32768x16384.txt" 2>&1
echo "ncu exit $? $(el)" >> "$L"
save
timeout 200 "$B/bin/kernels/cuda/kernels_cuda_test" > "$R/kernels_cuda_test.txt" 2>&1
echo "kernels_cuda_test exit $? $(el)" >> "$L"
grep -hE "^\[  FAILED|Failure|bit-identical|PASSED" "$R/kernels_cuda_test.txt" | head -30 >> "$L"
save
cat "$L"
python3 - "$R" <<'PY'
import json, sys, glob, statistics, collections
R = sys.argv[1]
t = collections.defaultdict(lambda: collections.defaultdict(list))
for f in sorted(glob.glob(R + "/ab_tp*_r*.json")):
    v = f.split("ab_tp")[1][0]
    for b in json.load(open(f))["benchmarks"]:
        t[b["name"].split("/iterations")[0]][v].append((b["us_per_call"], b.get("label", "")))
for n, d in t.items():
    off = statistics.median(x for x, _ in d["0"]); on = statistics.median(x for x, _ in d["1"])
    print(f"{n:70s} off {off:9.2f} on {on:9.2f} gain {off/on:5.3f}  {d['1'][0][1]}")
PY
