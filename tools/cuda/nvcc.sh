#!/usr/bin/env bash
# nvcc wrapper used by cuda_library (tools/cuda/cuda.bzl). Finds the CUDA toolkit:
#   $CUDA_PATH (passed into actions by `build:cuda --action_env=CUDA_PATH`), else /usr/local/cuda.
#
# Modes:
#   nvcc.sh --toolkit-root              print the toolkit root (or fail with the message below)
#   nvcc.sh LOG [nvcc arguments...]     run nvcc; its stderr (ptxas -v report, warnings) goes to LOG.
#                                       On failure all of it is printed and the exit status kept; on
#                                       success everything except ptxas' per-kernel info lines is
#                                       echoed (so warnings stay visible). LOG is demangled when
#                                       c++filt is available.
set -u

fail() {
  echo "nvcc not found: install the CUDA toolkit or set CUDA_PATH; CUDA targets build only with --config=cuda${1:+ ($1)}" >&2
  exit 1
}

if [[ -n "${CUDA_PATH:-}" ]]; then
  root="${CUDA_PATH%/}"
  [[ -x "$root/bin/nvcc" ]] || fail "CUDA_PATH=$CUDA_PATH has no bin/nvcc"
elif [[ -x /usr/local/cuda/bin/nvcc ]]; then
  root=/usr/local/cuda
else
  fail
fi

if [[ "${1:-}" == "--toolkit-root" ]]; then
  echo "$root"
  exit 0
fi

if [[ $# -lt 1 ]]; then
  echo "usage: nvcc.sh LOG [nvcc arguments...] | nvcc.sh --toolkit-root" >&2
  exit 2
fi
log="$1"
shift

raw="$log.raw"
# nvcc names its intermediate files in $TMPDIR after its process id
# (tmpxft_<pid>_...). Bazel's linux-sandbox gives every action its own pid
# namespace but a shared /tmp, so two CUDA compiles running at once both run as
# pid 3 and overwrite each other's files ("cudafe1.cpp: No such file or
# directory"). A private directory per action keeps them apart.
scratch="$(mktemp -d "${TMPDIR:-/tmp}/nvcc.XXXXXX")" || exit 1
trap 'rm -rf "$scratch"' EXIT
TMPDIR="$scratch" "$root/bin/nvcc" "$@" 2>"$raw"
rc=$?
if [[ $rc -ne 0 ]]; then
  cat "$raw" >&2
  echo "nvcc ($root/bin/nvcc) failed with exit status $rc" >&2
  rm -f "$raw"
  exit "$rc"
fi
# Echo what is not ptxas' routine report (warnings, remarks).
grep -Ev '^ptxas info|^ +[0-9]+ bytes stack frame' "$raw" >&2
if command -v c++filt >/dev/null 2>&1; then
  c++filt <"$raw" >"$log" || cp "$raw" "$log"
else
  cp "$raw" "$log"
fi
rm -f "$raw"
exit 0
