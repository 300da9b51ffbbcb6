#!/bin/bash -eu
# Builds normgraph's CPU fuzz targets under OSS-Fuzz's contract: $SRC, $OUT, $WORK, $CC, $CXX,
# $CFLAGS, $CXXFLAGS, $LIB_FUZZING_ENGINE. For each target it writes $OUT/<name>,
# $OUT/<name>_seed_corpus.zip, $OUT/<name>.dict and $OUT/<name>.options.
#
# Abseil comes from $SRC/abseil-cpp (built here with the sanitizer flags) if present, else from the
# system (/usr, Debian's libabsl-dev); nlohmann-json from $SRC/json if present, else the system.
# Targets tagged no-oss-fuzz in fuzz/BUILD.bazel (GPU campaigns) are not listed here.
#
# Local test (see fuzz/README.md): SRC=<dir holding normgraph/> OUT=... WORK=... CC=clang
# CXX=clang++ CFLAGS=... CXXFLAGS=... LIB_FUZZING_ENGINE=-fsanitize=fuzzer .clusterfuzzlite/build.sh
TARGETS="graph_replay_fuzzer safetensors_fuzzer"
ROOT="$SRC/normgraph"
WORK="${WORK:-$(mktemp -d)}"
mkdir -p "$OUT" "$WORK/obj"

INCLUDES=(-I"$ROOT")
if [[ -d "$SRC/abseil-cpp" ]]; then
  cmake -S "$SRC/abseil-cpp" -B "$WORK/absl-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_C_FLAGS="$CFLAGS" \
    -DCMAKE_CXX_FLAGS="$CXXFLAGS" -DCMAKE_CXX_STANDARD=17 -DABSL_PROPAGATE_CXX_STD=ON \
    -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$WORK/absl"
  cmake --build "$WORK/absl-build" --target install
  INCLUDES+=(-I"$WORK/absl/include")
  ABSL_LIBS=("$WORK"/absl/lib/libabsl_*.a)
else
  ABSL_LIBS=(/usr/lib/x86_64-linux-gnu/libabsl_*.a)
fi
[[ -d "$SRC/json" ]] && INCLUDES+=(-I"$SRC/json/single_include")

# Every library source the fuzz targets need (no tests, no tools, no benchmarks).
SOURCES=(
  "$ROOT"/core/{cpu_stream,dtype,step_buffers,storage,stream,tensor,tensor_slot,tensor_util}.cc
  "$ROOT"/kernels/{kernels,rms_norm_params}.cc "$ROOT"/kernels/cpu/rms_norm.cc
  "$ROOT"/layers/{gated_rms_norm,gemma3_norm_stack,legacy_zero_centered_rms_norm,module}.cc
  "$ROOT"/layers/{norm_launch,norm_module,norm_stack,qwen3_5_norm_stack,rms_norm,weights}.cc
  "$ROOT"/layers/zero_centered_rms_norm.cc
  "$ROOT"/layers/safetensors/{format,reader,writer}.cc
  "$ROOT"/graph/{bucketed_graphs,captured_graph,identity_snapshot,replay_policy}.cc
  "$ROOT"/fuzz/graph_replay_harness.cc
)
OBJECTS=()
for src in "${SOURCES[@]}"; do
  obj="$WORK/obj/$(echo "${src#$ROOT/}" | tr / _).o"
  $CXX $CXXFLAGS -std=c++17 "${INCLUDES[@]}" -c "$src" -o "$obj"
  OBJECTS+=("$obj")
done

for target in $TARGETS; do
  $CXX $CXXFLAGS -std=c++17 "${INCLUDES[@]}" -c "$ROOT/fuzz/$target.cc" -o "$WORK/obj/$target.o"
  $CXX $CXXFLAGS "$WORK/obj/$target.o" "${OBJECTS[@]}" $LIB_FUZZING_ENGINE \
    -Wl,--start-group "${ABSL_LIBS[@]}" -Wl,--end-group -lpthread -o "$OUT/$target"
  cp "$ROOT/fuzz/$target.dict" "$OUT/$target.dict"
  max_len=$([[ $target == graph_replay_fuzzer ]] && echo 512 || echo 4096)
  printf '[libfuzzer]\nmax_len = %s\ndict = %s.dict\n' "$max_len" "$target" >"$OUT/$target.options"
  rm -f "$OUT/${target}_seed_corpus.zip"
  (cd "$ROOT/fuzz/corpus/$target" && zip -q "$OUT/${target}_seed_corpus.zip" ./*)
done
