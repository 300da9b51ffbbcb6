#!/usr/bin/env bash
# The checks against Hugging Face transformers that need torch on a GPU host, run from a GPU bundle
# (tools/gpu_bundle.sh --extra=//tools:normgraph --extra=//tools:export_stack_case):
#   1. golden data from transformers' own norm modules (make_golden.py) into OUT/golden/;
#   2. one decode step of a Qwen3.5- and a Gemma3-shaped stack loaded through normgraph's loader,
#      computed by normgraph on the CPU backend and on the CUDA backend, each compared with
#      transformers' modules (compare_stack.py) -> OUT/stack_parity_{cpu,cuda}.json;
#   3. the main job on CUDA with the pre-fix loader injected, every policy -> OUT/normgraph_cuda.txt.
#
#   tools/hf/gpu_host_checks.sh BUNDLE_DIR OUT_DIR
set -uo pipefail
bundle=${1:?bundle dir}
out=${2:?out dir}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
status=0
step() { echo "=== $*"; }

step "make_golden.py"
python3 "$here/make_golden.py" --out "$out/golden" --device cuda || status=1

for device in cpu cuda; do
  for model in qwen3_5 gemma3; do
    step "export_stack_case --model=$model --device=$device"
    mkdir -p "$out/case_${model}_$device"
    "$bundle/bin/tools/export_stack_case" --model="$model" --device="$device" \
      --out_dir="$out/case_${model}_$device" || status=1
  done
  step "compare_stack.py ($device backend)"
  python3 "$here/compare_stack.py" "$out/case_qwen3_5_$device" "$out/case_gemma3_$device" \
    --json "$out/stack_parity_$device.json" || status=1
done

step "normgraph --device=cuda --inject=legacy-loader"
"$bundle/bin/tools/normgraph" --device=cuda --inject=legacy-loader --cycles=3 \
  >"$out/normgraph_cuda.txt" 2>&1 || status=1
step "normgraph --device=cuda (default model, rebind policy, json)"
"$bundle/bin/tools/normgraph" --device=cuda --policy=rebind --cycles=3 --json \
  >"$out/normgraph_cuda.json" 2>>"$out/normgraph_cuda.txt" || status=1
tail -8 "$out/normgraph_cuda.txt"
exit $status
