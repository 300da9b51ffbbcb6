#!/usr/bin/env bash
# Builds the audit for a GPU host and stages everything run_gpu_tests.sh needs in one folder
# (default .gpu/audit, git-ignored): lib/libnormgraph_audit.so, bin/c_api_test, python/*.py and
# the runner. The GPU host needs only the NVIDIA driver and a python3 with torch (no Bazel).
#
#   audit/stage_gpu_folder.sh [DEST]      # then, on the GPU host: DEST/run_gpu_tests.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.gpu/audit}
bazel build --config=cuda -c opt --jobs="${JOBS:-2}" \
  //audit:libnormgraph_audit.so //audit:c_api_test
bin=$(bazel info --config=cuda -c opt bazel-bin 2>/dev/null)
rm -rf "$dest"
mkdir -p "$dest/lib" "$dest/bin" "$dest/python"
cp "$bin/audit/libnormgraph_audit.so" "$dest/lib/"
cp "$bin/audit/c_api_test" "$dest/bin/"
cp audit/python/{normgraph_audit,fake_torch,normgraph_audit_test,torch_models,torch_audit_test,overhead_benchmark}.py \
  "$dest/python/"
cp audit/run_gpu_tests.sh "$dest/"
chmod -R u+w "$dest"
echo "staged $(du -sh "$dest" | cut -f1) in $dest ($(git rev-parse --short HEAD))"
