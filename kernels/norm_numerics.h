#ifndef NORMGRAPH_KERNELS_NORM_NUMERICS_H_
#define NORMGRAPH_KERNELS_NORM_NUMERICS_H_

// The numerics of the row norm, written once for every backend: the CPU
// reference kernel (kernels/cpu) and the CUDA kernels (kernels/cuda) both call
// these functions, so they agree bit for bit by construction. See
// kernels/rms_norm_params.h for the formulas of each variant and
// docs/numerics.md for why each choice was made.
//
// The sum of squares (the one reduction)
// ---------------------------------------
// For a row v[0..n) of float32 values, sum(v * v) is the *perfectly balanced
// pairwise sum* of the squares, evaluated in float64:
//   - each square is (double)v * (double)v, which is exact (a 24-bit mantissa
//     squared fits in float64's 53 bits, and float32's exponent range squared
//     fits in float64's);
//   - the n squares, padded with zeros to the next power of two, are summed as
//     a complete binary tree: leaves (2i, 2i+1) first, then pairs of pairs, and
//     so on. Adding a zero is exact, so the padding changes nothing but the
//     shape, which depends on n alone.
// The tree splits into aligned power-of-two subtrees, so any power-of-two
// partition of the row computes it exactly: a CPU loop with a binary-counter
// accumulator, a GPU thread that sums its 8-element chunks and then its
// contiguous run of chunks, a butterfly (xor shuffle) across threads that own
// contiguous, aligned runs, and one per slot of strided chunks (each slot an
// aligned subtree, kernels/cuda/row_layout.h) all follow the same tree.
// Accuracy: float64 with a tree of depth log2(n) errs by at most about log2(n)
// * 2^-53 relative, far below float32's 2^-24.
//
// The factor r = 1 / sqrt(sum / n + eps) is computed in float64 (IEEE sqrt
// and division, correctly rounded on the CPU and on CUDA alike) and rounded to
// float32 once. It is therefore within one float32 ulp of the exact value of
// the row (in practice the correctly rounded value), on every row family:
// random, all-equal, wide dynamic range, huge and tiny magnitudes, any length.
// (The CUDA decode kernels get the same bits sooner through rsqrt where the
// rounding cannot tell it apart: RoundsLikeNeighbours.)
//
// Everything else is float32 arithmetic with one rounding per operation
// (compiled without contraction into fused multiply-adds: -ffp-contract=off on
// the CPU, --fmad=false for CUDA; the exponential's fused multiply-adds are
// written out), and the 16-bit conversions of core/float_bits.h.

#include <cmath>
#include <cstdint>

#include "core/dtype.h"
#include "core/float_bits.h"

namespace normgraph {
namespace numerics {

// Elements per chunk: a GPU thread's 16-byte load of 16-bit elements, and the
// leaves of the smallest subtree a thread sums on its own.
constexpr int kChunk = 8;

// --- element conversions, by dtype ------------------------------------------
//
// The conversions of core/float_bits.h (round to nearest even, c10's NaN
// rules). In device code, the same functions through the hardware's
// conversion instructions, which are IEEE round-to-nearest-even conversions
// with subnormals (no .ftz) and so give the same bits for every non-NaN
// value. A NaN may come out with another payload or sign than the CPU gives
// it, which is never observable: a NaN stays a NaN through every operation
// here, and everything a kernel stores goes through EncodeOutput, which
// canonicalises it. Far fewer instructions than the integer emulation, which
// the CPU keeps.

#if defined(__CUDA_ARCH__)
__device__ __forceinline__ float DeviceF16ToFloat(uint32_t bits) {
  float f;
  const unsigned short h = static_cast<unsigned short>(bits);
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

__device__ __forceinline__ uint32_t DeviceFloatToF16(float f) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}

__device__ __forceinline__ uint32_t DeviceFloatToBf16(float f) {
  unsigned short h;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
#endif

template <DType D>
NG_HOST_DEVICE float Decode(uint32_t bits) {
  if (D == DType::kF32) return FloatFromBits(bits);
  if (D == DType::kBF16) return Bf16BitsToFloat(static_cast<uint16_t>(bits));
#if defined(__CUDA_ARCH__)
  return DeviceF16ToFloat(bits);
#else
  return F16BitsToFloat(static_cast<uint16_t>(bits));
#endif
}

template <DType D>
NG_HOST_DEVICE uint32_t Encode(float f) {
  if (D == DType::kF32) return FloatBits(f);
#if defined(__CUDA_ARCH__)
  if (D == DType::kBF16) return DeviceFloatToBf16(f);
  return DeviceFloatToF16(f);
#else
  if (D == DType::kBF16) return FloatToBf16Bits(f);
  return FloatToF16Bits(f);
#endif
}

// Rounds to D and back (a no-op for f32).
template <DType D>
NG_HOST_DEVICE float Round(float f) {
  return D == DType::kF32 ? f : Decode<D>(Encode<D>(f));
}

// The bits a kernel stores for anything it writes (the output, and the sum
// written back into the residual): Encode, except that every NaN becomes one
// canonical quiet NaN per dtype, so the sign or payload a platform's
// arithmetic happens to give a NaN (x86 and CUDA differ: inf - inf is
// negative on one, positive on the other) never shows in memory.
template <DType D>
NG_HOST_DEVICE uint32_t EncodeOutput(float f) {
  if (f != f) {
    return D == DType::kF32    ? 0x7FC00000u
           : D == DType::kBF16 ? 0x7FC0u
                               : 0x7E00u;
  }
  return Encode<D>(f);
}

// --- the reduction
// -------------------------------------------------------------

NG_HOST_DEVICE double Square(float v) {
  const double d = static_cast<double>(v);
  return d * d;
}

// The pairwise sum of the squares of one chunk: v[0..count) with count <= 8,
// the rest of the 8 leaves zero.
// On the GPU each leaf pair is one multiply and one fused multiply-add,
// fma(b, b, a * a): b * b is exact (see Square), so the fused operation rounds
// exactly what a * a + b * b rounds, and the result is the same bits with one
// instruction fewer per pair.
NG_HOST_DEVICE double ChunkSumOfSquares(const float* v, int count) {
  double s[kChunk];
  for (int i = 0; i < kChunk; ++i) s[i] = i < count ? Square(v[i]) : 0.0;
#if defined(__CUDA_ARCH__)
  double pair[kChunk / 2];
  for (int i = 0; i < kChunk / 2; ++i) {
    const double b =
        i * 2 + 1 < count ? static_cast<double>(v[2 * i + 1]) : 0.0;
    pair[i] = fma(b, b, s[2 * i]);
  }
  return (pair[0] + pair[1]) + (pair[2] + pair[3]);
#else
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
#endif
}

// Sums a sequence of leaves (here: chunk sums, in row order) as the balanced
// pairwise tree over the sequence padded with zeros to a power of two. It keeps
// one partial sum per level, like a binary counter: adding the k-th leaf merges
// equal-sized subtrees exactly where the tree does. Holds up to 2^kLevels - 1
// leaves.
template <int kLevels = 48>
class PairwiseAccumulator {
 public:
  NG_HOST_DEVICE void Add(double leaf) {
    int level = 0;
    for (uint64_t c = count_; c & 1u; c >>= 1, ++level) {
      leaf = partial_[level] + leaf;
    }
    partial_[level] = leaf;
    ++count_;
  }
  // The tree's root. The partial sums left are the subtrees of the binary
  // decomposition of the count; folding them from the smallest up is what the
  // zero-padded tree does (each zero subtree adds nothing).
  NG_HOST_DEVICE double Total() const {
    double total = 0.0;
    bool any = false;
    int level = 0;
    for (uint64_t c = count_; c != 0; c >>= 1, ++level) {
      if (c & 1u) {
        total = any ? partial_[level] + total : partial_[level];
        any = true;
      }
    }
    return total;
  }

 private:
  double partial_[kLevels];
  uint64_t count_ = 0;
};

// 1 / sqrt(mean + eps), in float64, rounded to float32 once.
NG_HOST_DEVICE float InvRmsOfMean(double mean, float eps) {
  return static_cast<float>(1.0 / sqrt(mean + static_cast<double>(eps)));
}

// sum_of_squares / n in float64. For a power-of-two n the division is a
// multiplication by 2^-k: both give the correctly rounded value of the same
// real number, so the same bits, and the multiplication is a fraction of a
// float64 division's latency (the critical path of a decode-sized CUDA norm).
// Callers may divide instead: the same bits again, and the throughput-bound
// CUDA kernels do, where the extra branch's registers made a form spill.
NG_HOST_DEVICE double MeanOfSquares(double sum_of_squares, int64_t n) {
  if (n > 0 && (n & (n - 1)) == 0) {
#if defined(__CUDA_ARCH__)
    const int k = __ffsll(n) - 1;
#else
    const int k = __builtin_ctzll(static_cast<unsigned long long>(n));
#endif
    // 2^-k as a normal float32 (k <= 62), exactly converted.
    const float inverse = FloatFromBits(static_cast<uint32_t>(127 - k) << 23);
    return sum_of_squares * static_cast<double>(inverse);
  }
  return sum_of_squares / static_cast<double>(n);
}

// The smallest sum that float32 rounds to +inf: halfway between FLT_MAX
// (2^128 - 2^104) and 2^128, where rounding to nearest even goes up.
constexpr double kFloat32OverflowSum = 0x1p128 - 0x1p103;

// A row's sum of squares as float32 accumulation ends where it overflows:
// +inf from kFloat32OverflowSum up (some element's float32 square overflows,
// |v| >= 2^64, or the squares add up past FLT_MAX), the float64 sum itself
// below (and a NaN stays a NaN). Hugging Face's xf.pow(2).mean() (and the
// engines' float32 reductions) is +inf there, rsqrt(inf) = 0, and the row's
// outputs are zeros (x * 0, signed as x; NaN where x or the weight is
// infinite): normgraph's exact float64 sum would keep the true factor, which
// no HF model computes. Applied to every row total before its mean.
NG_HOST_DEVICE double SumAsFloat32Accumulates(double sum_of_squares) {
  return sum_of_squares >= kFloat32OverflowSum
             ? static_cast<double>(FloatFromBits(0x7F800000u))
             : sum_of_squares;
}

// 1 / sqrt(sum_of_squares / n + eps), in float64, rounded to float32 once;
// 0 where float32 accumulation overflows (SumAsFloat32Accumulates).
NG_HOST_DEVICE float InvRms(double sum_of_squares, int64_t n, float eps) {
  return InvRmsOfMean(MeanOfSquares(SumAsFloat32Accumulates(sum_of_squares), n),
                      eps);
}

// How far, in float64 ulps, an approximation of a float64 result may be from
// it for RoundsLikeNeighbours to vouch for the approximation's rounding.
constexpr int kRoundingGuardUlps = 1024;

// Whether every float64 within kRoundingGuardUlps ulps of y (y positive)
// rounds to the same float32 as y: y is in float32's normal range and at
// least that far from a midpoint between two adjacent float32 values, the only
// places where rounding to nearest changes its result (a float32 value itself,
// a power of two included, is not one). Lets a GPU compute 1 / sqrt with
// rsqrt (within 1 float64 ulp of the correctly rounded value, CUDA's math
// library says; the exact chain InvRmsOfMean is within 1.5) and keep
// InvRmsOfMean's bits: where this says no, the caller runs the exact chain.
// Not finite, zero, negative, subnormal or out of float32's range: no.
NG_HOST_DEVICE bool RoundsLikeNeighbours(double y) {
  const uint64_t bits = DoubleBits(y);
  const int biased_exponent = static_cast<int>(bits >> 52);  // sign bit too
  if (biased_exponent < 1023 - 126 || biased_exponent > 1023 + 127) {
    return false;
  }
  // The 29 float64 mantissa bits below float32's 23: half of their range is
  // a rounding midpoint.
  const int64_t below = static_cast<int64_t>(bits & ((uint64_t{1} << 29) - 1));
  const int64_t from_midpoint = below - (int64_t{1} << 28);
  return from_midpoint > kRoundingGuardUlps ||
         from_midpoint < -kRoundingGuardUlps;
}

// --- silu
// ------------------------------------------------------------------------

// ExpF32's constants, named once for every implementation of it (the CPU's
// vector paths compute the same operations lanewise): 1 / ln2; ln2 split so
// that n * kExpLn2Hi is exact for |n| <= 2^8; and 1.5 * 2^23, whose sum with
// a float in (-2^22, 2^22) has a unit in the last place of 1.
constexpr float kExpLog2e = 1.44269502162933349609375f;
constexpr float kExpLn2Hi = 0.693145751953125f;
constexpr float kExpLn2Lo = 1.428606765330187045e-06f;
constexpr float kExpIntegerOffset = 12582912.0f;

// exp(c) = p * 2^n before the scaling (ExpF32's main path, for c in
// [-104, 89]): n = c / ln2 rounded to the nearest integer (ties to even),
// held as n + kExpIntegerOffset (n in its low mantissa bits), and
// p = exp(c - n ln2) by the polynomial.
struct ExpF32Split {
  float n_offset;  // n + 1.5 * 2^23, n an integer in [-150, 128]
  float p;         // in [0.70, 1.42]
};

// Every step is a fused multiply-add (one rounding each), which every
// backend has: std::fma / fmaf on the CPU (the vector paths' VFMADD), fmaf
// on CUDA. n comes out of the first one as the float of the rounded sum
// c / ln2 + 1.5 * 2^23, whose unit in the last place is 1: the nearest
// integer to the exact product, with no floor or conversion instruction.
NG_HOST_DEVICE ExpF32Split SplitExpF32(float c) {
  const float n_offset = fmaf(c, kExpLog2e, kExpIntegerOffset);
  const float n = n_offset - kExpIntegerOffset;  // exact
  const float r = fmaf(-n, kExpLn2Lo, fmaf(-n, kExpLn2Hi, c));
  float p = 1.0f / 5040.0f;
  p = fmaf(p, r, 1.0f / 720.0f);
  p = fmaf(p, r, 1.0f / 120.0f);
  p = fmaf(p, r, 1.0f / 24.0f);
  p = fmaf(p, r, 1.0f / 6.0f);
  p = fmaf(p, r, 0.5f);
  p = fmaf(p, r, 1.0f);
  p = fmaf(p, r, 1.0f);
  return {n_offset, p};
}

// The integer n of a split, from n + 1.5 * 2^23's bits (n + 2^22 in the low
// mantissa bits): no conversion instruction.
NG_HOST_DEVICE int32_t IntegerOfSplit(const ExpF32Split& s) {
  return static_cast<int32_t>(FloatBits(s.n_offset) - 0x4B400000u);
}

// exp(x) in float32 from +, -, *, fused multiply-add and exact bit operations
// only, so that it gives the same bits on every platform (the math libraries'
// expf differ in the last bit between glibc and CUDA). Cody-Waite reduction
// x = n ln2 + r with |r| <= ln2 / 2, a degree-7 Taylor polynomial by Horner's
// rule (truncation error below 6e-9 relative), then scaling by 2^n. Within 1
// ulp of float(exp(double(x))) for every float32 x (checked exhaustively).
// Written without branches (the special cases are selected from the result
// for a clamped argument), so that a GPU thread computes several in one
// instruction stream: with a branch a case, the gated kernels ran one
// exponential at a time.
NG_HOST_DEVICE float ExpF32(float x) {
  // Clamped (a NaN to -104) so that the main path stays in range; the values
  // the clamp changed are replaced below.
  const ExpF32Split s = SplitExpF32(fminf(fmaxf(x, -104.0f), 89.0f));
  // 2^n as two factors, each a normal float, so subnormal results come out
  // right: (p * 2^h) is exact, and the second product rounds p * 2^n once,
  // whichever way n is split.
  const int32_t ni = IntegerOfSplit(s);
  const int32_t half = ni / 2;
  const float s1 = FloatFromBits(static_cast<uint32_t>(half + 127) << 23);
  const float s2 = FloatFromBits(static_cast<uint32_t>(ni - half + 127) << 23);
  const float e = (s.p * s1) * s2;
  return x != x                     ? x
         : x > 88.72283935546875f   ? FloatFromBits(0x7F800000u)  // +inf
         : x < -103.97208404541016f ? 0.0f
                                    : e;
}

// silu(g) = g / (1 + exp(-g)) in float32.
NG_HOST_DEVICE float Silu(float g) { return g / (1.0f + ExpF32(-g)); }

// Silu's denominator 1 + ExpF32(-g), with fewer instructions and no select,
// for every g above -88.72283935546875 (and +inf at that value itself); below
// it, and for a NaN, some value the caller replaces (the GPU's branch-free
// silu, kernels/cuda/silu.h). ExpF32's p * 2^n as (p * 2^(n - 1)) * 2: the
// first product by adding n - 1 to p's exponent field (exact while it stays
// normal, which every g <= 64 keeps: n >= -93), the doubling and the 1 + in
// one fused multiply-add, which rounds 2 (p * 2^(n - 1)) + 1 once as 1 + p *
// 2^n does, to +inf exactly where ExpF32's scaling overflows. Above 64,
// exp(-g) < 2^-92 and 1 + it is 1, so g is clamped to 64 (whose 1 + exp is 1
// too). (The bits of n + 1.5 * 2^23 shifted left by 23 leave n << 23:
// IntegerOfSplit's offset shifts out.)
NG_HOST_DEVICE float SiluDenominatorAboveOverflow(float g) {
  const ExpF32Split e = SplitExpF32(-fminf(g, 64.0f));
  const uint32_t n_bits = FloatBits(e.n_offset) << 23;
  const float half_exp = FloatFromBits(FloatBits(e.p) + n_bits - 0x00800000u);
  return fmaf(half_exp, 2.0f, 1.0f);
}

// --- the elementwise parts
// -----------------------------------------------------

// The value the norm sees for one element, and (with a residual) the value
// written back into the residual stream: s = x + residual in float32; the
// residual becomes R_X(s); the norm input is R_X(s) in HF order (the decoder
// layer adds in the activation dtype) and s in engine order.
template <DType X>
NG_HOST_DEVICE float NormInput(float x, float residual, bool has_residual,
                               bool hf_order, float* residual_out) {
  if (!has_residual) return x;
  const float s = x + residual;
  const float rounded = Round<X>(s);
  *residual_out = rounded;
  return hf_order ? rounded : s;
}

// The HF-order output of a multiplied weight from the rounded normalised
// value R_X(v r) (what NormOutput computes first): weight * hidden, and for
// the gated form that product rounded to the promoted dtype of (weight,
// input) before gating in float32. Separate so that a kernel can round
// several values at once (packed conversions) and finish each here.
template <DType X, DType W>
NG_HOST_DEVICE float HfOutputFromRounded(float rounded, float w, bool gated,
                                         float silu) {
  float o = w * rounded;  // weight * hidden.to(input_dtype)
  if (gated && W == X) o = Round<X>(o);
  return gated ? o * silu : o;
}

// One output element before its final rounding to the output dtype, from the
// norm input v, the row's factor r, the weight element w (the float32 scale
// 1 + w when `scale`), and, when `gated`, silu(gate).
template <DType X, DType W>
NG_HOST_DEVICE float NormOutput(float v, float r, float w, bool scale,
                                bool hf_order, bool gated, float silu) {
  const float n = v * r;
  if (scale) return n * w;  // zero-centred: (x r) * (1 + w), one rounding
  if (hf_order) return HfOutputFromRounded<X, W>(Round<X>(n), w, gated, silu);
  const float o = n * w;
  return gated ? o * silu : o;
}

}  // namespace numerics
}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_NORM_NUMERICS_H_
