#ifndef NORMGRAPH_KERNELS_CUDA_SILU_H_
#define NORMGRAPH_KERNELS_CUDA_SILU_H_

// silu(g) for the gated kernels: numerics::Silu's bits (g / (1 + exp(-g))
// with numerics::ExpF32 and an IEEE division) without a branch. CUDA's
// correctly rounded division is a reciprocal refinement plus a test (FCHK)
// that branches to a slow subroutine for operands near the ends of the
// exponent range; with that branch and the exponential's special cases as
// branches, a thread computed its elements' silu one after another (H200,
// gated bf16 32768 x 4096: 494.7 us, 384.9 with this; a 256-node gated decode
// chain of 1 x 4096: 2.27 -> 1.74 us a node; benchmarks/RESULTS.md). Here the
// refinement runs on operands scaled into a range where it needs no test, and
// the few inputs outside it are selected. That this equals the IEEE division
// for every one of the 2^32 float32 inputs is checked exhaustively on the GPU
// (silu_check.h, silu_test), which is what vouches for it: the refinement's
// first step uses the hardware's approximate reciprocal.
//
// Device code only; compiled with --fmad=false like the kernels (the fused
// multiply-adds here are explicit).

#include <cstdint>

#include "core/float_bits.h"
#include "kernels/norm_numerics.h"

namespace normgraph {
namespace cuda_kernels {

__device__ __forceinline__ float SiluWithoutBranches(float g) {
  // 1 + ExpF32(-g) where g > -88.72 (the rest is selected below).
  const float d = numerics::SiluDenominatorAboveOverflow(g);
  // The quotient g / d by one Newton step on the reciprocal and one on the
  // quotient (Markstein), on d and g scaled by the same power of two so that
  // d is at most 2^64: the reciprocal and the remainder then stay normal.
  // Scaling both by a power of two is exact here and leaves the quotient as
  // it is.
  const float scale = d > 0x1p64f ? 0x1p-64f : 1.0f;
  const float ds = d * scale;
  const float gs = g * scale;
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(ds));
  const float y1 = __fmaf_rn(y, __fmaf_rn(-ds, y, 1.0f), y);
  const float q0 = __fmul_rn(gs, y1);
  // The remainder gs - ds q0 as -(ds q0 - gs): the same value for every
  // nonzero one, and -0 rather than +0 where both products are zero, so that
  // g = -0 comes out -0 as from the division.
  const float q = __fmaf_rn(y1, -__fmaf_rn(ds, q0, -gs), q0);
  // Selected: g <= -88.72 (-g past ExpF32's overflow threshold, or at it,
  // where its main path overflows: d = +inf; the refinement would make a NaN
  // of that): g / inf is g * 0 (-0, or NaN for g = -inf); g = +inf (d = 1;
  // the remainder would be inf - inf): g itself. A NaN g gives a NaN through
  // the refinement. (Tiny and subnormal g need no select: d = 2 there and the
  // refinement rounds g / 2 like the division; silu_test covers every input.)
  const float inf = FloatFromBits(0x7F800000u);
  return g <= -88.72283935546875f ? g * 0.0f : g == inf ? g : q;
}

}  // namespace cuda_kernels
}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_CUDA_SILU_H_
