# Builds one staged_ab binary per variant into .gpu/st (run from the repository root,
# with staged_ab_knobs.patch applied to kernels/cuda/rms_norm_kernels.h).
set -e
build() { name=$1; shift; /usr/local/cuda/bin/nvcc -std=c++17 -O3 --fmad=false -arch=sm_90a -I. -DVARIANT=$name "$@" benchmarks/results/h200-2026-11-30h/staged_ab.cu -o .gpu/st/staged_ab_$name -Xptxas -v 2>&1 | c++filt | grep -E "Compiling entry|spill|Used" | paste - - - | sed -E 's/.*RmsNormRegisterKernel<\(normgraph::DType\)([0-9]), \(normgraph::DType\)([0-9]), ([0-9]), ([0-9]+)>.*bytes stack frame, ([0-9]+) bytes spill stores.*Used ([0-9]+) registers.*/X\1 W\2 K\3 form\4 spill \5 regs \6/' | sed "s/^/$name /"; }
mkdir -p .gpu/st
build base
build st1 -DNG_EXP_STAGES=1
build st2 -DNG_EXP_STAGES=2
build st3 -DNG_EXP_STAGES=3
build st1_r96 -DNG_EXP_STAGES=1 -DNG_EXP_MAXNREG=96
build st2_r96 -DNG_EXP_STAGES=2 -DNG_EXP_MAXNREG=96
