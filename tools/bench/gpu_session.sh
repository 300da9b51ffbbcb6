#!/usr/bin/env bash
# One device call that measures everything benchmarks/RESULTS.md reports, on the GPU host:
#
#   tools/bench/gpu_session.sh OUTDIR
#
# From the repository root, with the bundle made here by `tools/gpu_bundle.sh --tar` at
# .gpu/bundle.tar.xz. Steps, each bounded by its own time limit so one slow step cannot lose the
# others' results:
#   1. the GPU tests (run_all.sh; NORMGRAPH_AUDIT_CHECK=1 audits the check fast path), filtered by
#      $TEST_FILTER (default: every test; empty string: none), at most $TEST_TIMEOUT s (default
#      240: kernels_cuda_test alone takes 90-120 s on the H200; $RUN_ALL_TIMEOUT, default 180, per
#      test);
#   2. normgraph's GPU benchmarks (cuda_norm_benchmark, cuda_graph_benchmark), JSON, at most
#      $BENCH_TIMEOUT s;
#   3. the peers (tools/bench/peers.py: PyTorch eager, transformers, torch.compile, PyTorch's CUDA
#      graph of the decode stack), at most $PEERS_TIMEOUT s (torch.compile stops after
#      $PEERS_BUDGET s).
# OUTDIR gets cuda_norm_benchmark.json, cuda_graph_benchmark.json,
# cuda_graph_benchmark_spread0.json (its decode stacks without spread launches), peers.json,
# summary.txt (tests), session.log and logs.tar.gz (every log). Never changes the GPU's settings.
set -uo pipefail

out="${1:?usage: gpu_session.sh OUTDIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
work="$(mktemp -d)"
log="$out/session.log"
exec > >(tee -a "$log") 2>&1
say() { echo "== $(date -u +%H:%M:%S) $*"; }

say "unpacking .gpu/bundle.tar.xz"
tar xJf .gpu/bundle.tar.xz -C "$work" || exit 2
bundle="$work/$(ls "$work" | head -1)"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw \
  --format=csv | tee "$work/nvidia-smi.txt"
python3 -c 'import torch, transformers, triton; print("torch", torch.__version__,
  "transformers", transformers.__version__, "triton", triton.__version__)' || true

if [[ -n "${TEST_FILTER-.}" ]]; then
  say "tests (filter '${TEST_FILTER-.}')"
  NORMGRAPH_AUDIT_CHECK=1 RUN_ALL_TIMEOUT="${RUN_ALL_TIMEOUT:-180}" timeout "${TEST_TIMEOUT:-240}" \
    "$bundle/run_all.sh" --out "$work/tests" \
    --filter "${TEST_FILTER-.}" --no-gpu-check
  echo "tests exit $?"
  cp "$work/tests/summary.txt" "$out/summary.txt" 2>/dev/null
  # Failures again without programmatic dependent launch, to tell a PDL problem from others.
  failed="$(awk '$1 == "FAIL" || $1 == "TIMEOUT" {print $3}' "$work/tests/summary.txt" 2>/dev/null |
    paste -sd'|')"
  if [[ -n "$failed" ]]; then
    say "failed tests again with NORMGRAPH_CUDA_PDL=0: $failed"
    NORMGRAPH_CUDA_PDL=0 NORMGRAPH_AUDIT_CHECK=1 timeout "${TEST_TIMEOUT:-240}" \
      "$bundle/run_all.sh" --out "$work/tests_nopdl" --filter "$failed" --no-gpu-check
    cp "$work/tests_nopdl/summary.txt" "$out/summary_nopdl.txt" 2>/dev/null
  fi
fi

say "normgraph benchmarks"
export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
deadline=$(($(date +%s) + ${BENCH_TIMEOUT:-150}))
for name in cuda_graph_benchmark cuda_norm_benchmark; do
  left=$((deadline - $(date +%s)))
  ((left > 10)) || { echo "no time left for $name"; continue; }
  (cd "$bundle/runfiles/"* && TEST_TMPDIR="$work" timeout "$left" \
    "$bundle/bin/benchmarks/$name" --benchmark_format=console \
    --benchmark_out="$out/$name.json" --benchmark_out_format=json ${BENCH_ARGS:-} \
    >"$work/$name.log" 2>&1)
  echo "$name exit $? ($(grep -c '"name"' "$out/$name.json" 2>/dev/null) results)"
  tail -n 4 "$work/$name.log"
  # The decode stacks again without spread launches (NORMGRAPH_CUDA_SPREAD=0): report.py's
  # spread table compares the two.
  left=$((deadline - $(date +%s)))
  if [[ $name == cuda_graph_benchmark ]] && ((left > 40)); then
    (cd "$bundle/runfiles/"* && NORMGRAPH_CUDA_SPREAD=0 TEST_TMPDIR="$work" timeout 40 \
      "$bundle/bin/benchmarks/$name" --benchmark_filter=DecodeStackReplay \
      --benchmark_out="$out/${name}_spread0.json" --benchmark_out_format=json \
      >"$work/${name}_spread0.log" 2>&1)
    echo "$name (spread off) exit $?"
  fi
  # Errors with PDL on: the graph suite again with it off (its pdl:0 cases set it themselves).
  if [[ $name == cuda_graph_benchmark ]] && grep -q '"error_occurred": true' "$out/$name.json"; then
    say "$name had errors: again with NORMGRAPH_CUDA_PDL=0"
    (cd "$bundle/runfiles/"* && NORMGRAPH_CUDA_PDL=0 TEST_TMPDIR="$work" timeout 60 \
      "$bundle/bin/benchmarks/$name" --benchmark_out="$out/${name}_nopdl.json" \
      --benchmark_out_format=json >"$work/${name}_nopdl.log" 2>&1)
  fi
done

if [[ "${PEERS_TIMEOUT:-150}" != 0 ]]; then
  say "peers"
  PYTHONUNBUFFERED=1 timeout "${PEERS_TIMEOUT:-150}" python3 tools/bench/peers.py \
    --out "$out/peers.json" --budget-s "${PEERS_BUDGET:-100}" >"$work/peers.log" 2>&1
  echo "peers exit $?"
  tail -n 3 "$work/peers.log"
fi

if [[ "${MEMCHECK_TIMEOUT:-45}" != 0 ]] && command -v compute-sanitizer >/dev/null; then
  say "memcheck: kernels_cuda_test, a short random sweep"
  (cd "$bundle/runfiles/"* && NORMGRAPH_SWEEP_CASES=40 timeout "${MEMCHECK_TIMEOUT:-45}" \
    compute-sanitizer --tool memcheck --error-exitcode=1 \
    "$bundle/bin/kernels/cuda/kernels_cuda_test" --gtest_filter='*RandomShapes*' \
    >"$work/memcheck.log" 2>&1)
  echo "memcheck exit $?"
  tail -n 3 "$work/memcheck.log"
fi

say "packing logs"
cp "$work"/*.log "$work/nvidia-smi.txt" "$out/" 2>/dev/null
tar czf "$out/logs.tar.gz" -C "$work" --exclude='*.tar.gz' --exclude=bundle \
  $(cd "$work" && ls -d tests *.log nvidia-smi.txt 2>/dev/null) 2>/dev/null
rm -f "$out"/cuda_*benchmark.log "$out/nvidia-smi.txt" "$out/peers.log"
ls -la "$out"
say "done"
