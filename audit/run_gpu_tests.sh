#!/usr/bin/env bash
# Every audit test and the overhead measurement, on a GPU host whose python3 has torch, transformers
# and triton. Runs from a folder made by stage_gpu_folder.sh (lib/, bin/, python/ beside this
# script), or from a checkout whose bazel-bin holds a `--config=cuda -c opt` build of //audit.
#
#   run_gpu_tests.sh OUT_DIR
#
# OUT_DIR gets (7 files): summary.txt (machine, versions, one PASS/FAIL line per step),
# c_api_test.log, unit_test.log, torch_test.log, torch_facts.json, overhead.log, overhead.json.
# Exits non-zero if any step failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: run_gpu_tests.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [[ -f $here/lib/libnormgraph_audit.so ]]; then
  lib=$here/lib/libnormgraph_audit.so
  bin=$here/bin
else
  lib=$here/../bazel-bin/audit/libnormgraph_audit.so
  bin=$here/../bazel-bin/audit
fi
py=$here/python
export NORMGRAPH_AUDIT_LIB=$lib NORMGRAPH_AUDIT_OUT=$out PYTHONUNBUFFERED=1
# NVLink multicast stays off on shared hosts.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1

summary=$out/summary.txt
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
  echo "python: $(python3 -c 'import sys, torch, triton, transformers; print(sys.version.split()[0], "torch", torch.__version__, "triton", triton.__version__, "transformers", transformers.__version__)' 2>&1 | tail -1)"
  echo "library: $lib"
} >"$summary"

status=0
# step NAME TIMEOUT_S LOG COMMAND...: runs the command in python/, logs it, records the verdict.
step() {
  local name=$1 limit=$2 log=$3
  shift 3
  local start=$SECONDS rc
  echo "=== $name"
  (cd "$py" && timeout "$limit" "$@") >"$out/$log" 2>&1
  rc=$?
  local verdict=PASS
  if [[ $rc -ne 0 ]]; then
    verdict="FAIL (exit $rc$([[ $rc -eq 124 ]] && echo ", timed out after ${limit}s"))"
    status=1
  fi
  printf '%-14s %s  %ds  %s\n' "$name" "$verdict" $((SECONDS - start)) "$log" | tee -a "$summary"
  tail -4 "$out/$log"
}

step c_api_test 30 c_api_test.log "$bin/c_api_test"
step unit_test 30 unit_test.log python3 normgraph_audit_test.py -v
step overhead 90 overhead.log python3 overhead_benchmark.py --json "$out/overhead.json"
step torch_test 120 torch_test.log python3 -m unittest -v torch_audit_test
grep -E '^(Ran|OK|FAILED|\[  (PASSED|FAILED) )' "$out"/*.log >>"$summary"
grep -E '^qwen3_5 ' "$out/overhead.log" >>"$summary"
exit $status
