#!/usr/bin/env bash
# Builds every GPU test and benchmark and packs them, with their data, into one self-contained folder
# that runs on a GPU host without Bazel (see tools/cuda/README.md).
#
#   tools/gpu_bundle.sh [OUTDIR] [--extra=//pkg:target ...] [--only=REGEX] [--strip] [--tar]
#
# --tar also writes OUTDIR.tar.xz (`tar xJf` gives the folder back), compressed with `xz -9e`:
# its 64 MiB dictionary finds the code the binaries share (the CUDA kernels), so six stripped
# CUDA test binaries pack into ~9 MB, where gzip or `xz -6` leave ~6 MB a binary.
# --only=REGEX keeps only the targets whose label matches REGEX (awk's extended regular
# expressions), and builds only those; --strip removes the binaries' debug information. With
# sm_90a only, a binary that links the CUDA kernels is ~24 MB (~9 MB stripped); mind a 64 MiB
# transfer limit (the device tool's, which counts the repository too), e.g.
#   BAZEL_FLAGS=--//tools/cuda:archs=sm_90a tools/gpu_bundle.sh --strip --tar \
#       --only='kernels_cuda_test|cuda_norm_benchmark'.
# OUTDIR defaults to .gpu/bundle (git-ignored), relative to the repository root; a relative OUTDIR
# given on the command line is relative to the current directory. An existing OUTDIR is replaced,
# but only if it is empty or an earlier bundle.
#
# Bundled: every cc_test / cc_binary tagged `gpu` (not `manual`), plus --extra targets. Built with
#   bazel build -c opt --config=cuda --dynamic_mode=off
# (extra Bazel flags from $BAZEL_FLAGS, e.g. BAZEL_FLAGS='--//tools/cuda:archs=sm_90a,compute_90';
# $JOBS sets --jobs, default 2).
#
# Layout of OUTDIR:
#   run_all.sh                  runs everything (run_all.sh --help)
#   manifest.tsv                kind (test|bench|binary) <TAB> label <TAB> binary path in the bundle
#   BUNDLE_INFO.txt             commit, date, build flags, targets, shared libraries shipped
#   bin/<package>/<name>        the binaries (package paths preserved), real files, not links
#   lib/                        shared libraries the binaries need that a stock Ubuntu 24.04 lacks
#                               (e.g. Debian's libbenchmark.so.1debian); run_all.sh puts it on
#                               LD_LIBRARY_PATH
#   runfiles/<workspace>/...    data files the targets list (`data`, directly or via a filegroup),
#                               at their repository paths. run_all.sh runs each binary from
#                               runfiles/<workspace>/ with TEST_SRCDIR=runfiles, as `bazel test`
#                               does, so "testdata/..." paths resolve.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

outdir=""
extras=()
tar=0
only=""
strip=0
for arg in "$@"; do
  case "$arg" in
    --extra=*) extras+=("${arg#--extra=}") ;;
    --tar) tar=1 ;;
    --only=*) only="${arg#--only=}" ;;
    --strip) strip=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*)
      echo "gpu_bundle.sh: unknown option $arg" >&2
      usage >&2
      exit 2
      ;;
    *)
      [[ -z "$outdir" ]] || {
        echo "gpu_bundle.sh: more than one OUTDIR" >&2
        exit 2
      }
      outdir="$arg"
      ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "$outdir" ]]; then
  outdir="$root/.gpu/bundle"
elif [[ "$outdir" != /* ]]; then
  outdir="$PWD/$outdir"
fi
cd "$root"

bazel="${BAZEL:-bazel}"
workspace="$(sed -n 's/^workspace(name = "\([^"]*\)").*/\1/p' WORKSPACE | head -1)"
workspace="${workspace:-normgraph}"
# shellcheck disable=SC2206  # BAZEL_FLAGS is a list of flags, split on spaces on purpose
flags=(-c opt --config=cuda --dynamic_mode=off "--jobs=${JOBS:-2}" ${BAZEL_FLAGS:-})

query() { # query EXPRESSION: labels (or label_kind lines with QUERY_OUTPUT), tolerating --keep_going
  local rc=0
  "$bazel" query --keep_going --noshow_progress --output="${QUERY_OUTPUT:-label}" "$1" 2>"$tmp/query.err" || rc=$?
  if [[ $rc -ne 0 && $rc -ne 3 ]]; then
    cat "$tmp/query.err" >&2
    return "$rc"
  elif [[ $rc -eq 3 ]]; then
    echo "gpu_bundle.sh: warning: bazel query had errors (broken packages?); results may be partial" >&2
  fi
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "== finding GPU targets"
QUERY_OUTPUT=label_kind query \
  'kind("cc_test|cc_binary", attr(tags, "\bgpu\b", //...)) except attr(tags, "\bmanual\b", //...)' \
  >"$tmp/found"
if ((${#extras[@]})); then
  QUERY_OUTPUT=label_kind query "set(${extras[*]})" >>"$tmp/found"
fi
sort -u -k3,3 "$tmp/found" | awk -v only="$only" '$3 ~ only {print $1 "\t" $3}' \
  >"$tmp/targets" # kind \t label
if [[ ! -s "$tmp/targets" ]]; then
  echo "gpu_bundle.sh: no targets tagged gpu and no --extra targets${only:+ match --only=$only}:" \
    "nothing to bundle" >&2
  exit 1
fi
cut -f2 "$tmp/targets" >"$tmp/labels"
query "attr(tags, \"\bbenchmark\b\", set($(tr '\n' ' ' <"$tmp/labels")))" >"$tmp/benchmarks"
sed 's/^/  /' "$tmp/labels"

echo "== building: $bazel build ${flags[*]}"
# shellcheck disable=SC2046
"$bazel" build "${flags[@]}" -- $(cat "$tmp/labels")
bin="$("$bazel" info "${flags[@]}" bazel-bin 2>/dev/null)"

if [[ -e "$outdir" ]]; then
  if [[ -n "$(ls -A "$outdir")" && ! -f "$outdir/manifest.tsv" ]]; then
    echo "gpu_bundle.sh: $outdir exists and is not a bundle; not replacing it" >&2
    exit 1
  fi
  rm -rf "$outdir"
fi
mkdir -p "$outdir/bin" "$outdir/lib" "$outdir/runfiles/$workspace"

label_path() { # //pkg:name -> pkg/name ; //:name -> name
  local label="${1#//}"
  label="${label/://}"
  echo "${label#/}"
}

echo "== copying binaries"
: >"$outdir/manifest.tsv"
while IFS=$'\t' read -r kind label; do
  path="$(label_path "$label")"
  if [[ ! -f "$bin/$path" ]]; then
    echo "gpu_bundle.sh: $label built no file at $bin/$path" >&2
    exit 1
  fi
  if grep -qxF "$label" "$tmp/benchmarks"; then
    role=bench
  elif [[ "$kind" == cc_test || "$kind" == *_test ]]; then
    role="test"
  else
    role=binary
  fi
  mkdir -p "$outdir/bin/$(dirname "$path")"
  cp -L "$bin/$path" "$outdir/bin/$path"
  chmod u+w,a+rx "$outdir/bin/$path"
  ((strip == 0)) || strip --strip-debug "$outdir/bin/$path"
  printf '%s\t%s\t%s\n' "$role" "$label" "bin/$path" >>"$outdir/manifest.tsv"
  [[ "$kind" == cc_* ]] || echo "gpu_bundle.sh: warning: $label is a $kind: only its executable is bundled" >&2
done <"$tmp/targets"

echo "== copying data"
# Files listed in `data` by the targets or anything they depend on, directly or through a filegroup.
all="set($(tr '\n' ' ' <"$tmp/labels"))"
data="labels(data, deps($all))"
query "kind(\"source file|generated file\", $data + labels(srcs, kind(filegroup, $data)))" | grep -v '^@' >"$tmp/data" || true
ndata=0
while read -r label; do
  path="$(label_path "$label")"
  dest="$outdir/runfiles/$workspace/$path"
  mkdir -p "$(dirname "$dest")"
  if [[ -f "$root/$path" ]]; then
    cp -L "$root/$path" "$dest"
  elif [[ -f "$bin/$path" ]]; then
    cp -L "$bin/$path" "$dest" # a generated file
  else
    echo "gpu_bundle.sh: warning: data file $label not found (not built?)" >&2
    continue
  fi
  chmod u+w,a+r "$dest"
  ndata=$((ndata + 1))
done <"$tmp/data"
echo "  $ndata data files"

echo "== shared libraries"
# Present on a stock Ubuntu 24.04: glibc's libraries, the loader, libgcc_s, libstdc++.
stock='^(linux-vdso\.so|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libresolv\.so|libutil\.so|ld-linux-x86-64\.so|libgcc_s\.so|libstdc\+\+\.so)'
check_libs() { # check_libs FILE: copy FILE's non-stock shared libraries into lib/
  local file="$1" name arrow path
  while read -r name arrow path _; do
    [[ "$name" == statically || "$name" == not ]] && continue # static binary / not dynamic
    [[ "$name" =~ $stock || "${name##*/}" =~ $stock ]] && continue
    if [[ "$arrow" != "=>" || "$path" == not ]]; then
      echo "gpu_bundle.sh: ${file#"$outdir"/} needs $name, which ldd cannot resolve here" >&2
      exit 1
    fi
    if [[ ! -e "$outdir/lib/$name" ]]; then
      cp -L "$path" "$outdir/lib/$name"
      chmod u+w "$outdir/lib/$name"
      echo "  lib/$name (from $path, needed by ${file#"$outdir"/})"
      check_libs "$outdir/lib/$name"
    fi
  done < <(ldd "$file" 2>/dev/null | sed 's/^[[:space:]]*//')
}
while IFS= read -r -d '' f; do
  check_libs "$f"
done < <(find "$outdir/bin" -type f -print0)

cp "$root/tools/cuda/run_all.sh" "$outdir/run_all.sh"
chmod a+rx "$outdir/run_all.sh"

{
  echo "normgraph GPU bundle"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  echo "bazel flags: ${flags[*]}"
  echo "workspace: $workspace"
  echo "targets:"
  sed 's/^/  /' "$outdir/manifest.tsv"
  echo "shipped libraries:"
  find "$outdir/lib" -type f -printf '  %f\n' | sort
} >"$outdir/BUNDLE_INFO.txt"

echo "== bundle: $outdir"
cut -f1 "$outdir/manifest.tsv" | sort | uniq -c | awk '{printf "  %d %s\n", $1, $2}'
echo "  size: $(du -sh "$outdir" | cut -f1) ($(du -sb "$outdir" | cut -f1) bytes)"
if [[ $tar -eq 1 ]]; then
  tar -C "$(dirname "$outdir")" -cf - "$(basename "$outdir")" | xz -9e -T0 >"$outdir.tar.xz"
  echo "  archive: $outdir.tar.xz ($(du -sh "$outdir.tar.xz" | cut -f1))"
fi
echo "  run on the GPU host: $outdir/run_all.sh [--sanitize] [--bench] [--out DIR]"
