#ifndef NORMGRAPH_KERNELS_CPU_RMS_NORM_H_
#define NORMGRAPH_KERNELS_CPU_RMS_NORM_H_

// The CPU reference kernels. They define normgraph's numerics (see
// kernels/rms_norm_params.h for the formulas); the CUDA kernels are tested
// against them.
//
// Determinism and accuracy: every numeric step (the float64 pairwise sum of
// squares, the factor, silu, the roundings) is defined once in
// kernels/norm_numerics.h, which the CUDA kernels follow too; the order
// depends only on the row length, so every run and every backend gives the
// same bits.

#include <cstdint>

#include "kernels/rms_norm_params.h"

namespace normgraph {

// Runs the whole norm over every row. `p` must be valid
// (ValidateRmsNormParams). Rows of bf16 / f16 activations with weight and
// output of the same dtype take a vectorized path where the CPU has one (see
// rms_norm.cc); it gives the same bits as RmsNormCpuScalar.
void RmsNormCpu(const RmsNormParams& p);

// The implementations RmsNormCpu picks from, the first that applies: AVX-512
// (F, BW, VL, DQ, BF16), AVX2 (with F16C), the scalar definition.
enum class CpuPath { kAvx512, kAvx2, kScalar };

// Runs `path` on p and returns true, or returns false without touching
// anything if this CPU lacks the path or the path does not handle p. For
// tests: every path the machine has can be checked against RmsNormCpuScalar,
// not only the one RmsNormCpu picks.
bool RmsNormCpuOnPath(CpuPath path, const RmsNormParams& p);

// The same norm one element at a time, straight from kernels/norm_numerics.h:
// the definition the fast path is tested against.
void RmsNormCpuScalar(const RmsNormParams& p);

// A byte copy.
void CopyCpu(const CopyParams& p);

// The three stages of one row, exposed so that tests can substitute torch's own
// per-row factor and silu values and check the elementwise part bit for bit.
//
// Loads row `row`'s normalisation input as float32 into v[0, cols); with a
// residual, also writes residual <- R_x(x + residual) for that row.
void LoadNormInput(const RmsNormParams& p, int64_t row, float* v);
// 1 / sqrt(mean(v * v) + eps), with the reduction of norm_numerics.h.
float InvRms(const float* v, int64_t cols, float eps);
// Writes row `row` of the output from the loaded input v and the factor. If
// `silu` is not null, its cols values replace silu(float(gate)) for the row.
void ApplyNorm(const RmsNormParams& p, int64_t row, const float* v,
               float inv_rms, const float* silu);
// g / (1 + exp(-g)) in float32 (numerics::Silu).
float Silu(float g);

}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_CPU_RMS_NORM_H_
