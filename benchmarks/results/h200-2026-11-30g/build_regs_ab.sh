set -e
cd /work/main
build() { name=$1; shift; /usr/local/cuda/bin/nvcc -std=c++17 -O3 --fmad=false -arch=sm_90a -I. -DVARIANT=$name "$@" benchmarks/results/h200-2026-11-30g/regs_ab.cu -o .gpu/ab/regs_ab_$name -Xptxas -v 2>&1 | c++filt | grep -E "Compiling entry|spill|Used" | paste - - - | sed -E 's/.*RmsNormRegisterKernel<\(normgraph::DType\)([0-9]), \(normgraph::DType\)([0-9]), ([0-9]), ([0-9]+)>.*bytes stack frame, ([0-9]+) bytes spill stores.*Used ([0-9]+) registers.*/X\1 W\2 K\3 form\4 spill \5 regs \6/' | sed "s/^/$name /"; }
build base
build r64 -DNG_EXP_MAXNREG=64
build r80 -DNG_EXP_MAXNREG=80
build r96 -DNG_EXP_MAXNREG=96
build fast -DNG_EXP_K2_FAST=1 -DNG_EXP_K4R_FAST=1
build fast_r80 -DNG_EXP_K2_FAST=1 -DNG_EXP_K4R_FAST=1 -DNG_EXP_MAXNREG=80
build fast_r96 -DNG_EXP_K2_FAST=1 -DNG_EXP_K4R_FAST=1 -DNG_EXP_MAXNREG=96
