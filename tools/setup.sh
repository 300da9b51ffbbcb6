#!/usr/bin/env bash
# Installs everything normgraph's build, tests, sanitizers, fuzzing and formatting need on a fresh
# Debian 12 machine. Idempotent: running it again installs nothing new. It is the only install step.
set -euo pipefail

die() { echo "tools/setup.sh: error: $*" >&2; exit 1; }

# Debian packages: compilers, Bazel, the system libraries third_party/ wraps, sanitizer and libFuzzer
# runtimes, formatting tools, and zip for OSS-Fuzz seed-corpus packaging.
PACKAGES=(
  bazel-bootstrap      # Bazel 4.2.3, the only Bazel that installs offline here (see docs/bazel.md)
  g++                  # default toolchain
  clang                # --config=asan/ubsan/fuzz
  libclang-rt-14-dev   # ASan/UBSan/libFuzzer runtimes for clang 14
  libabsl-dev          # Abseil 20220623: status, strings, containers, flags
  libgtest-dev         # GoogleTest (static libgtest.a)
  libgmock-dev         # GoogleMock (static libgmock.a)
  libbenchmark-dev     # Google Benchmark
  nlohmann-json3-dev   # JSON parsing for safetensors headers
  clang-format         # C++ formatting (Google style, see .clang-format)
  clang-tidy
  zip                  # <name>_seed_corpus.zip for OSS-Fuzz packages
  xz-utils             # tools/gpu_bundle.sh --tar
  unzip
  python3              # tools/fuzz_campaign.py, fuzz/make_seed_corpus.py
  python3-matplotlib   # tools/bench/report.py (benchmarks/RESULTS.md charts)
  git
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ "$(id -u)" != "0" ]]; then
    die "missing packages (${missing[*]}); installing them needs root: sudo tools/setup.sh"
  fi
  echo "tools/setup.sh: installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed (is Debian's archive reachable?)"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || die "apt-get install failed for: ${missing[*]}"
fi

for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || die "package '$p' is still missing after apt-get install"
done

# Files the build relies on; a clear message beats a linker error later.
for f in /usr/lib/x86_64-linux-gnu/libgtest.a /usr/lib/x86_64-linux-gnu/libgmock.a \
         /usr/lib/x86_64-linux-gnu/libabsl_status.a /usr/lib/x86_64-linux-gnu/libbenchmark.so \
         /usr/include/nlohmann/json.hpp; do
  [[ -e "$f" ]] || die "expected file '$f' is missing; the Debian package that provides it is broken"
done

# buildifier (BUILD formatting, which .ci/run checks) comes from npm: Debian's npm package where the
# machine has no npm at all (a Node.js install that ships its own npm is left alone).
if ! command -v buildifier >/dev/null 2>&1; then
  if ! command -v npm >/dev/null 2>&1; then
    [[ "$(id -u)" == "0" ]] || die "npm is missing (for buildifier); installing it needs root: sudo tools/setup.sh"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends npm \
      || die "apt-get install failed for: npm"
  fi
  npm install -g --silent @bazel/buildifier@8.2.1 >/dev/null 2>&1 \
    || die "'npm install -g @bazel/buildifier@8.2.1' failed (is the npm registry reachable?)"
  command -v buildifier >/dev/null 2>&1 || die "buildifier is still missing after npm install"
fi

echo "tools/setup.sh: ok ($(bazel --version 2>/dev/null || echo bazel), $(g++ --version | head -1), $(clang --version | head -1))"
