# Session 22 call 5: the gated decode chain benchmark as committed (no wide kernels).
set -u
W=$(mktemp -d); R="$W/r"; mkdir -p "$R"
tar xJf .gpu/c22d.tar.xz -C "$W" && B="$W/c22d"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
(cd "$B/runfiles/"* && TEST_TMPDIR="$W" timeout 120 "$B/bin/benchmarks/cuda_graph_benchmark" --benchmark_filter='BM_GatedDecodeStackReplay|BM_DecodeStackReplay/batch:(1|8|64)/pdl:1/k:0/copy:0/cluster:0/hidden:4096' --benchmark_out="$R/cuda_graph_benchmark_call5.json" --benchmark_out_format=json > "$R/graph_bench_call5.log" 2>&1; echo "exit $?")
cp "$R"/* "$OUT"/
grep -E "Replay" "$R/graph_bench_call5.log" | awk '{print $1, $2}'
