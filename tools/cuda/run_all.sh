#!/usr/bin/env bash
# Runs a GPU bundle (made by tools/gpu_bundle.sh) on a GPU host; needs no Bazel.
#
#   run_all.sh [--out DIR] [--filter REGEX] [--sanitize] [--bench] [--no-tests] [--compact]
#              [--no-gpu-check]
#
#   --out DIR       results folder (default: <bundle>/results; emptied first)
#   --filter REGEX  only targets whose label (//pkg:name) matches REGEX (grep -E)
#   --sanitize      also run each test under compute-sanitizer memcheck, racecheck and initcheck
#                   (--error-exitcode=1); SANITIZE_GTEST_FILTER=<gtest filter> runs only that
#                   subset under the sanitizers (default: leave out the CPU instances of
#                   backend tests, '*/cpu', and the tests that provoke failing CUDA API calls on
#                   purpose, 'CudaApiErrorTest.*', which compute-sanitizer counts as errors;
#                   in //audit targets memcheck's reports of the parameter-count probe,
#                   cu{Func,Kernel}GetParamInfo one index past the last, are expected);
#                   SANITIZER_ARGS adds compute-sanitizer flags
#   --bench         also run the benchmarks (targets tagged `benchmark`):
#                   --benchmark_format=json --benchmark_out=<logs>/<id>.json; BENCH_ARGS adds flags
#                   (e.g. BENCH_ARGS=--benchmark_filter=4096)
#   --no-tests      skip the tests (with --bench: benchmarks only)
#   --compact       keep only summary.txt and logs.tar.gz in DIR (for collectors that fetch few files)
#   --no-gpu-check  run even when nvidia-smi finds no GPU
#
# Each binary runs from <bundle>/runfiles/<workspace>/ with TEST_SRCDIR=<bundle>/runfiles,
# TEST_WORKSPACE, TEST_TMPDIR, TEST_UNDECLARED_OUTPUTS_DIR and XML_OUTPUT_FILE set as `bazel test`
# sets them, and LD_LIBRARY_PATH=<bundle>/lib. Time limits (seconds): RUN_ALL_TIMEOUT (per test,
# default 600), RUN_ALL_SANITIZE_TIMEOUT (per test and tool, 1200), RUN_ALL_BENCH_TIMEOUT (600).
# GTEST_ARGS adds flags to every test run.
#
# DIR gets summary.txt (one line per target), logs.tar.gz (everything below) and logs/:
#   <id>.log <id>.xml  test output and gtest XML      (<id>: the label as pkg.subpkg.name)
#   <id>.<tool>.log    compute-sanitizer output
#   <id>.json <id>.bench.log  benchmark results and output
#   outputs/<id>/      files a test wrote to TEST_UNDECLARED_OUTPUTS_DIR
#   nvidia-smi.txt, bundle_info.txt
# Exit status: 0 all passed, 1 something failed, 2 no GPU or bad usage.
set -uo pipefail

usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; }

bundle="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$bundle/results"
filter=""
sanitize=0
bench=0
tests=1
compact=0
gpu_check=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out)
      out="${2:?--out needs a folder}"
      shift
      ;;
    --out=*) out="${1#--out=}" ;;
    --filter)
      filter="${2:?--filter needs a regex}"
      shift
      ;;
    --filter=*) filter="${1#--filter=}" ;;
    --sanitize) sanitize=1 ;;
    --bench) bench=1 ;;
    --no-tests) tests=0 ;;
    --compact) compact=1 ;;
    --no-gpu-check) gpu_check=0 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "run_all.sh: unknown argument $1" >&2
      usage >&2
      exit 2
      ;;
  esac
  shift
done

if [[ ! -f "$bundle/manifest.tsv" ]]; then
  echo "run_all.sh: $bundle/manifest.tsv missing: run the copy inside a bundle (tools/gpu_bundle.sh)" >&2
  exit 2
fi
mkdir -p "$out" && out="$(cd "$out" && pwd)"
rm -rf "$out/logs" "$out/summary.txt" "$out/logs.tar.gz"
logs="$out/logs"
mkdir -p "$logs"
summary="$out/summary.txt"
workspace="$(sed -n 's/^workspace: //p' "$bundle/BUNDLE_INFO.txt" 2>/dev/null)"
workspace="${workspace:-normgraph}"
rundir="$bundle/runfiles/$workspace"
mkdir -p "$rundir"
cp "$bundle/BUNDLE_INFO.txt" "$logs/bundle_info.txt" 2>/dev/null

failures=0
lines=() # summary lines

finish() { # finish EXIT_STATUS: write summary.txt, the tarball, print the summary
  {
    echo "bundle: $(sed -n 's/^commit: //p' "$bundle/BUNDLE_INFO.txt" 2>/dev/null) | host: $(hostname) | $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    [[ -n "${gpu_line:-}" ]] && echo "gpu: $gpu_line"
    printf '%s\n' "${lines[@]}"
  } >"$summary"
  tar -C "$out" -czf "$out/logs.tar.gz" logs summary.txt
  [[ $compact -eq 1 ]] && rm -rf "$logs"
  echo "==== summary ($summary; all logs: $out/logs.tar.gz)"
  cat "$summary"
  exit "$1"
}

echo "==== GPU"
smi="$(command -v nvidia-smi || true)"
gpu_line=""
if [[ -z "$smi" ]]; then
  gpu_error="no GPU: nvidia-smi not found on PATH (is the NVIDIA driver installed? this bundle runs only on a GPU host)"
elif ! gpu_line="$(timeout 60 "$smi" --query-gpu=index,name,driver_version,memory.total,memory.used,temperature.gpu,utilization.gpu,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1)" || [[ -z "$gpu_line" ]]; then
  gpu_error="no GPU: nvidia-smi failed: $(echo "$gpu_line" | head -3 | tr '\n' ' ')"
  gpu_line=""
else
  gpu_error=""
  timeout 60 "$smi" >"$logs/nvidia-smi.txt" 2>&1
  echo "$gpu_line"
fi
if [[ -n "$gpu_error" ]]; then
  echo "run_all.sh: $gpu_error" >&2
  if [[ $gpu_check -eq 1 ]]; then
    lines+=("ERROR $gpu_error (nothing run; --no-gpu-check runs anyway)")
    finish 2
  fi
  lines+=("WARNING $gpu_error")
fi

# The targets: role <TAB> label <TAB> path.
mapfile -t entries < <(awk -F'\t' -v re="$filter" 're == "" || $2 ~ re' "$bundle/manifest.tsv")
if [[ ${#entries[@]} -eq 0 ]]; then
  lines+=("ERROR no target in manifest.tsv matches --filter '$filter'")
  finish 2
fi

id_of() { # //pkg/sub:name -> pkg.sub.name
  local id="${1#//}"
  id="${id//\//.}"
  id="${id//:/.}"
  echo "${id#.}"
}

# run_one LOG TIMEOUT ID COMMAND...: runs COMMAND the way `bazel test` would; returns its status.
run_one() {
  local log="$1" limit="$2" id="$3"
  shift 3
  mkdir -p "$logs/tmp/$id" "$logs/outputs/$id"
  (
    cd "$rundir" &&
      exec env LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        TEST_SRCDIR="$bundle/runfiles" TEST_WORKSPACE="$workspace" \
        TEST_TMPDIR="$logs/tmp/$id" TEST_UNDECLARED_OUTPUTS_DIR="$logs/outputs/$id" \
        XML_OUTPUT_FILE="$logs/$id.xml" GTEST_COLOR=no \
        timeout -k 10 "$limit" "$@"
  ) >"$log" 2>&1
}

status_word() { # status_word RC
  case "$1" in
    0) echo PASS ;;
    124 | 137) echo TIMEOUT ;;
    *) echo FAIL ;;
  esac
}

gtest_counts() { # gtest_counts XML: "N tests, F failed" from the <testsuites> element
  [[ -f "$1" ]] || {
    echo "no xml"
    return
  }
  sed -n 's/.*<testsuites[^>]* tests="\([0-9]*\)" failures="\([0-9]*\)"[^>]*>.*/\1 tests, \2 failed/p' "$1" | head -1
}

sanitizer=""
if [[ $sanitize -eq 1 ]]; then
  for candidate in "$(command -v compute-sanitizer)" "${CUDA_PATH:-/usr/local/cuda}/bin/compute-sanitizer" /usr/local/cuda/bin/compute-sanitizer; do
    [[ -n "$candidate" && -x "$candidate" ]] && sanitizer="$candidate" && break
  done
fi
tools=(memcheck racecheck initcheck)

# shellcheck disable=SC2206  # flag lists, split on spaces on purpose
gtest_args=(${GTEST_ARGS:-})
# shellcheck disable=SC2206
sanitizer_args=(${SANITIZER_ARGS:-})
# shellcheck disable=SC2206
bench_args=(${BENCH_ARGS:-})
ntests=0
nbench=0
lines+=("$(printf '%-7s %7s  %-48s %s' RESULT TIME TARGET DETAILS)")

for entry in "${entries[@]}"; do
  IFS=$'\t' read -r role label path <<<"$entry"
  id="$(id_of "$label")"
  binary="$bundle/$path"
  if [[ $role == test && $tests -eq 1 ]]; then
    ntests=$((ntests + 1))
    echo "==== test $label"
    start=$SECONDS
    run_one "$logs/$id.log" "${RUN_ALL_TIMEOUT:-600}" "$id" "$binary" "--gtest_output=xml:$logs/$id.xml" "${gtest_args[@]}"
    rc=$?
    result="$(status_word $rc)"
    details="$(gtest_counts "$logs/$id.xml")"
    [[ $rc -ne 0 ]] && details+="; exit $rc"
    if [[ $rc -ne 0 ]]; then
      failures=$((failures + 1))
      # The failing tests and the first failure messages, compactly.
      grep -E '^\[  FAILED  \] [^ ]+\.[^ ]+' "$logs/$id.log" | sort -u | head -10 | sed 's/^/    /'
      grep -E -m 8 -A 6 'Failure$|error:|^terminate called|Segmentation|Aborted' "$logs/$id.log" | head -30 | cut -c1-200 | sed 's/^/    | /'
      [[ $rc -eq 124 || $rc -eq 137 ]] && echo "    timed out after ${RUN_ALL_TIMEOUT:-600}s; last lines:" && tail -5 "$logs/$id.log" | cut -c1-200 | sed 's/^/    | /'
    fi
    if [[ $sanitize -eq 1 ]]; then
      for tool in "${tools[@]}"; do
        if [[ -z "$sanitizer" ]]; then
          details+="; $tool MISSING"
          failures=$((failures + 1))
          continue
        fi
        sargs=("--tool" "$tool" "--error-exitcode=1" "${sanitizer_args[@]}")
        targs=()
        targs+=("--gtest_filter=${SANITIZE_GTEST_FILTER:--*/cpu:CudaApiErrorTest.*}")
        echo "==== $tool $label"
        run_one "$logs/$id.$tool.log" "${RUN_ALL_SANITIZE_TIMEOUT:-1200}" "$id.$tool" "$sanitizer" "${sargs[@]}" "$binary" "${targs[@]}" "${gtest_args[@]}"
        src=$?
        count="$(grep -Eo '(ERROR|RACECHECK) SUMMARY: [0-9]+ (errors|hazards)' "$logs/$id.$tool.log" | tail -1 | grep -Eo '[0-9]+ [a-z]+$')"
        if [[ $tool == memcheck && $src -ne 0 && $label == //audit:* ]]; then
          # The audit learns a foreign kernel's parameter count the only way CUDA 13.0's driver API
          # offers: cu{Func,Kernel}GetParamInfo for the index one past the last answers
          # CUDA_ERROR_INVALID_VALUE, which memcheck reports as an API error. Those probes, and
          # only those, are expected; any other error still fails the run.
          probes="$(grep -c 'due to "invalid argument" on CUDA API call to cu\(Func\|Kernel\)GetParamInfo' "$logs/$id.$tool.log")"
          if [[ "${count%% *}" == "$probes" ]] && grep -q '^\[  PASSED  \]' "$logs/$id.$tool.log" \
              && ! grep -q '^\[  FAILED  \]' "$logs/$id.$tool.log"; then
            src=0
            count="0 errors, $probes expected parameter-count probes"
          fi
        fi
        if [[ $src -ne 0 ]] && grep -q 'Target application terminated before first instrumented API call' \
            "$logs/$id.$tool.log" && grep -q '^\[  PASSED  \]' "$logs/$id.$tool.log" \
            && ! grep -q '^\[  FAILED  \]' "$logs/$id.$tool.log"; then
          # The tests passed without one CUDA API call (a GPU build of a test whose cases touch
          # no device memory): the tool had nothing to check, which it reports as an error.
          src=0
          count="no CUDA API call to check"
        fi
        details+="; $tool $(status_word $src)${count:+ ($count)}"
        if [[ $src -ne 0 ]]; then
          failures=$((failures + 1))
          result=FAIL
          grep -E -m 8 '^=========   ?(Invalid|Race|Uninitialized|Program hit|Error)|^========= [A-Z]' "$logs/$id.$tool.log" | head -8 | cut -c1-200 | sed "s/^/    $tool| /"
        fi
      done
    fi
    lines+=("$(printf '%-7s %6ds  %-48s %s' "$result" $((SECONDS - start)) "$label" "$details")")
  elif [[ $role == bench && $bench -eq 1 ]]; then
    nbench=$((nbench + 1))
    echo "==== benchmark $label"
    start=$SECONDS
    run_one "$logs/$id.bench.log" "${RUN_ALL_BENCH_TIMEOUT:-600}" "$id" "$binary" --benchmark_format=json \
      "--benchmark_out=$logs/$id.json" --benchmark_out_format=json "${bench_args[@]}"
    rc=$?
    result="$(status_word $rc)"
    n="$(grep -c '"run_name"' "$logs/$id.json" 2>/dev/null)"
    errors="$(grep -c '"error_occurred": true' "$logs/$id.json" 2>/dev/null)"
    details="${n:-0} runs, ${errors:-0} with errors -> logs/$id.json"
    if [[ $rc -ne 0 ]]; then
      failures=$((failures + 1))
      details+="; exit $rc"
      tail -5 "$logs/$id.bench.log" | cut -c1-200 | sed 's/^/    | /'
    fi
    lines+=("$(printf '%-7s %6ds  %-48s %s' "$result" $((SECONDS - start)) "$label" "bench: $details")")
  fi
done

lines+=("$ntests tests$([[ $sanitize -eq 1 ]] && echo " (with compute-sanitizer ${tools[*]})"), $nbench benchmarks: $([[ $failures -eq 0 ]] && echo "all passed" || echo "$failures failed")")
finish $((failures == 0 ? 0 : 1))
