#include "kernels/cpu/rms_norm.h"

#if defined(__x86_64__)
#include <cpuid.h>
// GCC 12 warns about its own AVX-512 intrinsics (_mm512_undefined_*, GCC bug
// 105593) wherever they are inlined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
#define NG_HAVE_FAST_PATH 1
#else
#define NG_HAVE_FAST_PATH 0
#endif

#include <cstring>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "kernels/norm_numerics.h"

namespace normgraph {
namespace {

using numerics::Decode;
using numerics::EncodeOutput;

template <DType D>
inline float Load(const void* base, int64_t i) {
  constexpr size_t kSize = DTypeSize(D);
  uint32_t bits = 0;
  if (kSize == 4) {
    std::memcpy(&bits, static_cast<const char*>(base) + i * kSize, 4);
  } else {
    uint16_t half;
    std::memcpy(&half, static_cast<const char*>(base) + i * kSize, 2);
    bits = half;
  }
  return Decode<D>(bits);
}

template <DType D>
inline void Store(void* base, int64_t i, uint32_t bits) {
  constexpr size_t kSize = DTypeSize(D);
  char* p = static_cast<char*>(base) + i * kSize;
  if (kSize == 4) {
    std::memcpy(p, &bits, 4);
  } else {
    const uint16_t half = static_cast<uint16_t>(bits);
    std::memcpy(p, &half, 2);
  }
}

template <DType D>
const char* RowOf(const void* base, int64_t row, int64_t stride) {
  return static_cast<const char*>(base) + row * stride * DTypeSize(D);
}

// Calls f(std::integral_constant<DType, d>) for the runtime dtype `d`.
template <typename F>
void WithDType(DType d, F&& f) {
  switch (d) {
    case DType::kF32:
      f(std::integral_constant<DType, DType::kF32>{});
      return;
    case DType::kBF16:
      f(std::integral_constant<DType, DType::kBF16>{});
      return;
    case DType::kF16:
      f(std::integral_constant<DType, DType::kF16>{});
      return;
  }
}

template <DType X>
void LoadNormInputT(const RmsNormParams& p, int64_t row, float* v) {
  const char* x = RowOf<X>(p.x, row, p.x_stride);
  const bool has_residual = p.residual != nullptr;
  char* res =
      has_residual
          ? const_cast<char*>(RowOf<X>(p.residual, row, p.residual_stride))
          : nullptr;
  const bool hf = p.order == RoundingOrder::kHuggingFace;
  for (int64_t j = 0; j < p.cols; ++j) {
    float rounded = 0.0f;
    v[j] = numerics::NormInput<X>(Load<X>(x, j),
                                  has_residual ? Load<X>(res, j) : 0.0f,
                                  has_residual, hf, &rounded);
    if (has_residual) Store<X>(res, j, EncodeOutput<X>(rounded));
  }
}

template <DType X, DType W, DType O>
void ApplyNormT(const RmsNormParams& p, int64_t row, const float* v, float r,
                const float* silu) {
  char* out = const_cast<char*>(RowOf<O>(p.out, row, p.out_stride));
  const bool gated = p.gate != nullptr;
  const char* gate = gated ? RowOf<X>(p.gate, row, p.gate_stride) : nullptr;
  const bool scale = p.weight_kind == NormWeight::kScale;
  const bool hf = p.order == RoundingOrder::kHuggingFace;
  for (int64_t j = 0; j < p.cols; ++j) {
    const float w =
        scale ? Load<DType::kF32>(p.weight, j) : Load<W>(p.weight, j);
    float s = 0.0f;
    if (gated) s = silu != nullptr ? silu[j] : numerics::Silu(Load<X>(gate, j));
    const float o = numerics::NormOutput<X, W>(v[j], r, w, scale, hf, gated, s);
    Store<O>(out, j, EncodeOutput<O>(o));
  }
}

// --- The AVX2 path
// ------------------------------------------------------------
//
// Rows of 16-bit activations (bf16, f16) with weight, gate and output in the
// activation dtype (or the f32 scale): every norm of the decoder stacks. Same
// numerics, bit for bit (kernels/norm_numerics.h); faster by
// - working on 8 lanes at a time (GCC/Clang vector extensions compiled for
//   AVX2 with F16C and FMA, chosen at run time where the CPU has them but not
//   the AVX-512 path below; elsewhere RmsNormCpuScalar runs), with branch-free
//   16-bit conversions (bf16: the same integer round-to-nearest-even as
//   core/float_bits.h, lanewise; f16: the F16C instructions, which agree with
//   core/float_bits.h on every non-NaN value, checked exhaustively);
// - loading 8 weights (and gate values) at a time as they are needed, silu
//   by numerics::ExpF32's operations lanewise, its special cases left to the
//   division (Silu8);
// - summing the squares of each 64-element block (an aligned subtree of the
//   pairwise tree) in any order when that sum is provably exact: every square
//   of a 16-bit value is a multiple of its block's grain g (the square of the
//   smallest unit in the last place among the block's non-zero values), so
//   every partial sum, in any order, is a multiple of g no larger than the
//   total; if the computed total is at most 2^52 g, the exact total is below
//   2^53 g, every partial sum is exactly representable, and the result is the
//   exact sum, which is also what the tree computes. Otherwise (and for
//   non-finite values) the block is summed as the tree. The blocks' sums are
//   then combined by the same pairwise accumulator as the tree's upper levels
//   (a tree over aligned subtrees is the tree; zero padding adds nothing).

#if NG_HAVE_FAST_PATH

// The pairwise tree of the squares of v[0, n) (n <= 64): what the
// reference's chunk loop computes for this aligned subtree.
double TreeSum(const float* v, int64_t n) {
  numerics::PairwiseAccumulator<8> sum;
  for (int64_t j = 0; j < n; j += numerics::kChunk) {
    const int64_t left = n - j;
    sum.Add(numerics::ChunkSumOfSquares(v + j, left < numerics::kChunk
                                                   ? static_cast<int>(left)
                                                   : numerics::kChunk));
  }
  return sum.Total();
}

// The variant of a call as template arguments of the vectorized paths' row
// loops (a scale is never gated: ValidateRmsNormParams).
template <bool R, bool H, bool S, bool G>
struct RowForm {
  static constexpr bool kResidual = R, kHf = H, kScale = S, kGated = G;
};

// make(std::integral_constant<DType, X>{}, RowForm<...>{}) for the activation
// dtype (bf16 or f16) and the form of `p`: the row loop a path runs for p.
template <typename Make>
auto RowsFor(const RmsNormParams& p, Make make) {
  const bool residual = p.residual != nullptr;
  const bool hf = p.order == RoundingOrder::kHuggingFace;
  const bool scale = p.weight_kind == NormWeight::kScale;
  const bool gated = p.gate != nullptr;
  auto of = [&](auto form) {
    return p.x_dtype == DType::kBF16
               ? make(std::integral_constant<DType, DType::kBF16>{}, form)
               : make(std::integral_constant<DType, DType::kF16>{}, form);
  };
  if (residual) {
    if (hf) {
      return scale   ? of(RowForm<true, true, true, false>{})
             : gated ? of(RowForm<true, true, false, true>{})
                     : of(RowForm<true, true, false, false>{});
    }
    return scale   ? of(RowForm<true, false, true, false>{})
           : gated ? of(RowForm<true, false, false, true>{})
                   : of(RowForm<true, false, false, false>{});
  }
  if (hf) {
    return scale   ? of(RowForm<false, true, true, false>{})
           : gated ? of(RowForm<false, true, false, true>{})
                   : of(RowForm<false, true, false, false>{});
  }
  return scale   ? of(RowForm<false, false, true, false>{})
         : gated ? of(RowForm<false, false, false, true>{})
                 : of(RowForm<false, false, false, false>{});
}

namespace avx2 {

#define NG_FAST __attribute__((always_inline, target("avx2,f16c,fma"))) inline
#define NG_AVX2 __attribute__((target("avx2,f16c,fma")))

typedef float F8 __attribute__((vector_size(32)));
typedef uint32_t U8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));
typedef uint16_t H8 __attribute__((vector_size(16)));
typedef int16_t S8 __attribute__((vector_size(16)));
typedef double D4 __attribute__((vector_size(32)));

constexpr int kBlock = 64;  // elements per exactly-summed block (8 chunks)

template <typename V>
NG_FAST V LoadV(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename V>
NG_FAST void StoreV(void* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

NG_FAST U8 Bits(F8 f) {
  U8 u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

NG_FAST F8 Floats(U8 u) {
  F8 f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

NG_FAST U8 Widen(const void* p) {
  return __builtin_convertvector(LoadV<H8>(p), U8);
}

NG_FAST void Narrow(void* p, U8 v) {
  StoreV(p, __builtin_convertvector(v, H8));
}

// a > b lanewise as a mask (all ones or all zeros). Every value compared is
// below 2^31, so a signed compare (which SSE and AVX2 have) is exact.
NG_FAST U8 Gt(U8 a, uint32_t b) {
  return (U8)((I8)a > static_cast<int32_t>(b));
}

// mask ? a : b, lanewise.
NG_FAST U8 Select(U8 mask, U8 a, U8 b) { return (mask & a) | (~mask & b); }

NG_FAST U8 MinLanes(U8 a, U8 b) {
  return (U8)_mm256_min_epu32((__m256i)a, (__m256i)b);
}

template <DType X>
struct Format;

template <>
struct Format<DType::kBF16> {
  static constexpr int kStored = 7;  // stored mantissa bits
  static constexpr int kBias = 127;
  static constexpr uint32_t kExponentMask = 0xFF;

  NG_FAST static U8 Decode(U8 h) { return h << 16; }

  // FloatToBf16Bits lanewise: round to nearest even, NaN -> 0x7FC0.
  NG_FAST static U8 Encode(F8 f) {
    const U8 u = Bits(f);
    const U8 nan = Gt(u & 0x7FFFFFFFu, 0x7F800000u);
    const U8 rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    return Select(nan, U8{} + 0x7FC0u, rounded);
  }
  // EncodeOutput: Encode already gives the canonical NaN.
  NG_FAST static U8 EncodeOutput(F8 f) { return Encode(f); }
};

template <>
struct Format<DType::kF16> {  // converted with F16C (below)
  static constexpr int kStored = 10;
  static constexpr int kBias = 15;
  static constexpr uint32_t kExponentMask = 0x1F;
};

// f16 through F16C (exact IEEE conversions: VCVTPH2PS widens every f16,
// subnormals included; VCVTPS2PH with round-to-nearest-even is
// FloatToF16Bits for every non-NaN value, overflow to infinity included).
// NaNs may keep other payload bits than core/float_bits.h gives them, which
// never reaches memory: everything a kernel stores goes through
// CanonicalF16, and NaN inputs make NaN rows.
NG_FAST F8 HalfToFloat(H8 h) {
  __m128i bits;
  std::memcpy(&bits, &h, sizeof bits);
  return (F8)_mm256_cvtph_ps(bits);
}

NG_FAST H8 FloatToHalf(F8 f) {
  const __m128i bits = _mm256_cvtps_ph((__m256)f, _MM_FROUND_TO_NEAREST_INT);
  H8 h;
  std::memcpy(&h, &bits, sizeof h);
  return h;
}

// Every f16 NaN becomes the canonical 0x7E00 (EncodeOutput's).
NG_FAST H8 CanonicalF16(H8 h) {
  const H8 nan = (H8)((S8)(h & 0x7FFFu) > (int16_t)0x7C00);
  return (nan & (H8{} + 0x7E00u)) | (~nan & h);
}

template <DType X>
NG_FAST F8 Round(F8 f) {
  if constexpr (X == DType::kF16) {
    return HalfToFloat(FloatToHalf(f));
  } else {
    return Floats(Format<X>::Decode(Format<X>::Encode(f)));
  }
}

// EncodeOutput of 8 values, stored at p.
template <DType X>
NG_FAST void StoreOutput(char* p, F8 f) {
  if constexpr (X == DType::kF16) {
    StoreV(p, CanonicalF16(FloatToHalf(f)));
  } else {
    Narrow(p, Format<X>::EncodeOutput(f));
  }
}

// The ulp code of each 16-bit value: (|h| - 1) modulo 2^16. Shifted right by
// the stored mantissa bits, it is the exponent field (the biased exponent of
// the unit in the last place) or one less (an exact power of two, a
// subnormal), and 0xFFFF for zeros; a code too small only makes the exactness
// test stricter.
template <DType X>
NG_FAST U8 UlpExponentCode(U8 h) {
  return ((h & 0x7FFFu) - 1u) & 0xFFFFu;
}

NG_FAST uint32_t HorizontalMin(U8 v) {
  const __m128i m = _mm_min_epu32(_mm256_castsi256_si128((__m256i)v),
                                  _mm256_extracti128_si256((__m256i)v, 1));
  // The codes fit in the low halves: the high ones, all ones, never win.
  const __m128i words =
      _mm_or_si128(m, _mm_set1_epi32(static_cast<int>(0xFFFF0000u)));
  return static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_minpos_epu16(words))) &
         0xFFFFu;
}

// Whether a computed block sum of squares is exact (see above), from the
// block's smallest ulp code: at most 2^52 grains, a grain being
// 2^(2 (exponent - bias - stored)). A block of zeros (code 0xFFFF) sums to 0.
template <DType X>
NG_FAST bool BlockSumIsExact(double sum, uint32_t code) {
  using F = Format<X>;
  const uint32_t field = code >> F::kStored;
  const int exponent =
      static_cast<int>(field < F::kExponentMask ? field : F::kExponentMask - 1);
  const uint64_t bits =
      static_cast<uint64_t>(1023 + 52 + 2 * (exponent - F::kBias - F::kStored))
      << 52;
  double limit;
  std::memcpy(&limit, &bits, sizeof limit);
  return sum <= limit;
}

// The norm input of the 8 elements at j (the residual written back); `code`
// gets their ulp exponent codes.
template <DType X, bool kResidual, bool kHf>
NG_FAST F8 Input8(const char* x, char* res, int64_t j, U8* code) {
  using F = Format<X>;
  if constexpr (X == DType::kF16) {
    const H8 xh = LoadV<H8>(x + 2 * j);
    const F8 xf = HalfToFloat(xh);
    if (!kResidual) {
      *code = UlpExponentCode<X>(__builtin_convertvector(xh, U8));
      return xf;
    }
    const H8 rh = LoadV<H8>(res + 2 * j);
    const F8 s = xf + HalfToFloat(rh);
    const H8 enc = FloatToHalf(s);
    StoreV(res + 2 * j, CanonicalF16(enc));
    if (kHf) {
      *code = UlpExponentCode<X>(__builtin_convertvector(enc, U8));
      return HalfToFloat(enc);
    }
    *code = MinLanes(UlpExponentCode<X>(__builtin_convertvector(xh, U8)),
                     UlpExponentCode<X>(__builtin_convertvector(rh, U8)));
    return s;
  } else {
    const U8 xh = Widen(x + 2 * j);
    if (!kResidual) {
      *code = UlpExponentCode<X>(xh);
      return Floats(F::Decode(xh));
    }
    const U8 rh = Widen(res + 2 * j);
    const F8 s = Floats(F::Decode(xh)) + Floats(F::Decode(rh));
    const U8 enc = F::Encode(s);
    const F8 rounded = Floats(F::Decode(enc));
    Narrow(res + 2 * j, F::EncodeOutput(rounded));
    if (kHf) {
      *code = UlpExponentCode<X>(enc);
      return rounded;
    }
    // s, rounded to float32, is still a multiple of the smaller ulp of x and
    // the residual.
    *code = MinLanes(UlpExponentCode<X>(xh), UlpExponentCode<X>(rh));
    return s;
  }
}

// 8 weights from j as float: the f32 scale, or the weight in the activation
// dtype.
template <DType X, bool kScale>
NG_FAST F8 Weight8(const void* w, int64_t j) {
  if constexpr (kScale) {
    return LoadV<F8>(static_cast<const float*>(w) + j);
  } else if constexpr (X == DType::kF16) {
    return HalfToFloat(LoadV<H8>(static_cast<const char*>(w) + 2 * j));
  } else {
    return Floats(
        Format<X>::Decode(Widen(static_cast<const char*>(w) + 2 * j)));
  }
}

// a * b + c, rounded once (VFMADD).
NG_FAST F8 Fma(F8 a, F8 b, F8 c) {
  return (F8)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
}

// numerics::Silu, lanewise: g / (1 + ExpF32(-g)), the denominator from
// ExpF32's main path alone on g clamped to [-89, 64] (a NaN to -89), where it
// equals 1 + ExpF32(-g) or leads the division to the same quotient: above 64,
// exp(-g) < 2^-92 and 1 + it is 1, as at 64; at or below -88.72 the main path
// overflows to +inf, as ExpF32 does (g / inf: -0, or NaN for g = -inf); a NaN
// g makes a NaN whatever the denominator. The same operations as ExpF32's in
// the same order (checked against the scalar Silu on all 2^32 inputs).
NG_FAST F8 Silu8(F8 g) {
  // VMAXPS gives its second operand where the first is a NaN.
  const F8 c = -(F8)_mm256_min_ps(
      _mm256_max_ps((__m256)g, _mm256_set1_ps(-89.0f)), _mm256_set1_ps(64.0f));
  const F8 offset = F8{} + numerics::kExpIntegerOffset;
  const F8 n_offset = Fma(c, F8{} + numerics::kExpLog2e, offset);
  const F8 n = n_offset - offset;
  const F8 r = Fma(-n, F8{} + numerics::kExpLn2Lo,
                   Fma(-n, F8{} + numerics::kExpLn2Hi, c));
  F8 p = F8{} + 1.0f / 5040.0f;
  for (const float k : {1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f,
                        0.5f, 1.0f, 1.0f}) {
    p = Fma(p, r, F8{} + k);
  }
  const I8 ni = (I8)(Bits(n_offset) - 0x4B400000u);  // in [-93, 128]
  const I8 half = ni / 2;
  const F8 s1 = Floats((U8)((half + 127) << 23));
  const F8 s2 = Floats((U8)((ni - half + 127) << 23));
  return g / (1.0f + (p * s1) * s2);
}

// 8 gate values from j as float.
template <DType X>
NG_FAST F8 Gate8(const char* gate, int64_t j) {
  if constexpr (X == DType::kF16) {
    return HalfToFloat(LoadV<H8>(gate + 2 * j));
  } else {
    return Floats(Format<X>::Decode(Widen(gate + 2 * j)));
  }
}

// Every row; `v`, `codes` and `block_sums` are scratch.
template <DType X, bool kResidual, bool kHf, bool kScale, bool kGated>
NG_AVX2 void Rows(const RmsNormParams& p, float* v, uint32_t* codes,
                  double* block_sums) {
  const int64_t n = p.cols;
  const int64_t vec_end = n / 8 * 8;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  for (int64_t row = 0; row < p.rows; ++row) {
    const char* x = RowOf<X>(p.x, row, p.x_stride);
    char* res =
        kResidual
            ? const_cast<char*>(RowOf<X>(p.residual, row, p.residual_stride))
            : nullptr;
    char* out = const_cast<char*>(RowOf<X>(p.out, row, p.out_stride));

    // The norm input (and the residual written back), block by block, with
    // each block's smallest ulp and its sum of squares in any order.
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t begin = b * kBlock;
      const int64_t end = begin + kBlock < vec_end ? begin + kBlock : vec_end;
      U8 least = U8{} + 0xFFFFu;
      D4 acc0 = {}, acc1 = {};
      for (int64_t j = begin; j < end; j += 8) {
        U8 code;
        const F8 f = Input8<X, kResidual, kHf>(x, res, j, &code);
        StoreV(v + j, f);
        least = MinLanes(least, code);
        const D4 lo = __builtin_convertvector(
            __builtin_shufflevector(f, f, 0, 1, 2, 3), D4);
        const D4 hi = __builtin_convertvector(
            __builtin_shufflevector(f, f, 4, 5, 6, 7), D4);
        acc0 += lo * lo;
        acc1 += hi * hi;
      }
      const D4 acc = acc0 + acc1;
      block_sums[b] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
      codes[b] = HorizontalMin(least);
    }
    for (int64_t j = vec_end; j < n; ++j) {  // the tail, one at a time
      float rounded = 0.0f;
      const float xf = Load<X>(x, j);
      if (kResidual) {
        v[j] = numerics::NormInput<X>(xf, Load<X>(res, j), true, kHf, &rounded);
        Store<X>(res, j, EncodeOutput<X>(rounded));
      } else {
        v[j] = xf;
      }
      codes[j / kBlock] = 0;  // a block with a tail is summed as the tree
    }

    // The sum of squares, block by block.
    numerics::PairwiseAccumulator<> total;
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t begin = b * kBlock;
      const int64_t size = n - begin < kBlock ? n - begin : kBlock;
      // A block with a tail (code 0) is summed as the tree.
      const bool exact =
          codes[b] != 0 && BlockSumIsExact<X>(block_sums[b], codes[b]);
      total.Add(exact ? block_sums[b] : TreeSum(v + begin, size));
    }
    const float r = numerics::InvRms(total.Total(), n, p.eps);

    // The output.
    const char* gate = kGated ? RowOf<X>(p.gate, row, p.gate_stride) : nullptr;
    const F8 rv = F8{} + r;
    for (int64_t j = 0; j < vec_end; j += 8) {
      const F8 normed = LoadV<F8>(v + j) * rv;
      const F8 wv = Weight8<X, kScale>(p.weight, j);
      F8 o;
      if (kScale || !kHf) {
        o = normed * wv;
      } else {
        o = wv * Round<X>(normed);
        if (kGated) o = Round<X>(o);
      }
      if (kGated) o = o * Silu8(Gate8<X>(gate, j));
      StoreOutput<X>(out + 2 * j, o);
    }
    for (int64_t j = vec_end; j < n; ++j) {
      const float w =
          kScale ? Load<DType::kF32>(p.weight, j) : Load<X>(p.weight, j);
      const float silu = kGated ? numerics::Silu(Load<X>(gate, j)) : 0.0f;
      const float o =
          numerics::NormOutput<X, X>(v[j], r, w, kScale, kHf, kGated, silu);
      Store<X>(out, j, EncodeOutput<X>(o));
    }
  }
}

#undef NG_FAST
#undef NG_AVX2

}  // namespace avx2

// --- The AVX-512 path
// ---------------------------------------------------------
//
// Rows of 16-bit activations (bf16, f16) with weight, gate and output in the
// activation dtype (or the f32 scale), on CPUs with AVX512 F, BW, VL, DQ and
// BF16 (chosen at run time, before the AVX2 path). Same numerics, bit for
// bit; 16 lanes at a time, every tail
// through masked loads and stores (masked-off lanes read as zeros, which add
// nothing to a sum of squares), and two passes over the row:
// 1. the norm input (and the residual written back), and each 64-element
//    block's sum of squares in any order plus the block's smallest ulp, as in
//    the AVX2 path; a block whose sum is not provably exact is summed again
//    as the tree (in vectors). Where the norm input is a 16-bit value (no
//    residual, or HF order), its square is exact in float32 too (at most 22
//    significant bits) unless it underflows (a bf16 ulp below 2^-74, checked
//    per block) or overflows (an infinite sum, never provably exact), so the
//    squares are taken in float32 and only their sums in float64. Eight
//    blocks' sums are reduced together (a transpose), and the blocks' sums are
//    combined as the tree's upper levels.
// 2. the output, reading the norm input again (x, the written-back residual,
//    or, in engine order with a residual, the unrounded float sums kept in a
//    scratch row).
// bf16 conversions use AVX512_BF16's VCVTNEPS2BF16, which rounds to nearest
// even like FloatToBf16Bits for every float but NaNs and subnormals (checked
// over all 2^32 floats on a Zen 4); vectors holding either take the integer
// rounding instead.
// silu is numerics::ExpF32's operations lanewise, its special cases left to
// the division (Silu).

namespace avx512 {

#define NG_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define NG_AVX512_INLINE NG_AVX512 __attribute__((always_inline)) inline

constexpr int kBlock = 64;  // elements per exactly-summed block (8 chunks)
constexpr int kGroup = 8;   // blocks whose sums are reduced together

// VFPCLASSPS categories.
constexpr int kNan = 0x81;       // quiet or signalling NaN
constexpr int kDenormal = 0x20;  // float32 subnormal

// The lanes of the 16 elements from j in a row with `left` = n - j elements
// left.
NG_AVX512_INLINE __mmask16 Lanes(int64_t left) {
  return left >= 16  ? static_cast<__mmask16>(0xFFFF)
         : left <= 0 ? static_cast<__mmask16>(0)
                     : static_cast<__mmask16>((1u << left) - 1);
}

constexpr __mmask16 kAll = 0xFFFF;

// Loads and stores of 16 elements from j, plain where every lane is on (the
// loops' main parts, where the mask is a constant).
NG_AVX512_INLINE __m256i Load16(const char* p, int64_t j, __mmask16 m) {
  return m == kAll
             ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2 * j))
             : _mm256_maskz_loadu_epi16(m, p + 2 * j);
}

NG_AVX512_INLINE void Store16(char* p, int64_t j, __mmask16 m, __m256i h) {
  if (m == kAll) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 2 * j), h);
  } else {
    _mm256_mask_storeu_epi16(p + 2 * j, m, h);
  }
}

NG_AVX512_INLINE __m512 LoadFloat16(const float* p, __mmask16 m) {
  return m == kAll ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}

NG_AVX512_INLINE void StoreFloat16(float* p, __mmask16 m, __m512 f) {
  if (m == kAll) {
    _mm512_storeu_ps(p, f);
  } else {
    _mm512_mask_storeu_ps(p, m, f);
  }
}

template <DType X>
struct Half;

template <>
struct Half<DType::kBF16> {
  static constexpr int kStored = 7;  // stored mantissa bits
  static constexpr int kBias = 127;
  static constexpr int kMaxCode = 254;  // the largest finite exponent field

  NG_AVX512_INLINE static __m512 ToFloat(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }

  // VCVTNEPS2BF16: EncodeOutput where no lane of f is a NaN or a subnormal
  // (it flushes subnormals and quiets NaNs its own way).
  NG_AVX512_INLINE static __m256i Narrow(__m512 f) {
    const __m256bh h = _mm512_cvtneps_pbh(f);
    __m256i bits;
    std::memcpy(&bits, &h, sizeof bits);
    return bits;
  }

  // EncodeOutput, lanewise.
  NG_AVX512_INLINE static __m256i Encode(__m512 f) {
    if (_mm512_fpclass_ps_mask(f, kNan | kDenormal) == 0) return Narrow(f);
    return EncodeSlow(f);
  }

  // FloatToBf16Bits' integer rounding, with EncodeOutput's canonical NaN.
  NG_AVX512 static __m256i EncodeSlow(__m512 f) {
    const __m512i u = _mm512_castps_si512(f);
    const __m512i lsb =
        _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb),
        16);
    return _mm256_mask_mov_epi16(_mm512_cvtepi32_epi16(rounded),
                                 _mm512_fpclass_ps_mask(f, kNan),
                                 _mm256_set1_epi16(0x7FC0));
  }

  NG_AVX512_INLINE static __m512 Round(__m512 f) { return ToFloat(Encode(f)); }
};

template <>
struct Half<DType::kF16> {
  static constexpr int kStored = 10;
  static constexpr int kBias = 15;
  static constexpr int kMaxCode = 30;

  // F16C's conversions, as in the AVX2 path.
  NG_AVX512_INLINE static __m512 ToFloat(__m256i h) {
    return _mm512_cvtph_ps(h);
  }

  NG_AVX512_INLINE static __m256i Encode(__m512 f) {
    const __m256i h = _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT);
    return _mm256_mask_mov_epi16(h, _mm512_fpclass_ps_mask(f, kNan),
                                 _mm256_set1_epi16(0x7E00));
  }

  // A NaN stays a NaN (its payload never reaches memory).
  NG_AVX512_INLINE static __m512 Round(__m512 f) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
  }
};

// Folds 16 values' ulp codes into `code`, a running lanewise minimum. A
// value's code is (|h| - 1) modulo 2^16: shifted right by the stored mantissa
// bits, it is the exponent field (the ulp's biased exponent) or one less
// (an exact power of two, a subnormal), and 0xFFFF for zeros; a code too small
// only makes the exactness test stricter.
NG_AVX512_INLINE __m256i FoldCode(__m256i code, __m256i h) {
  const __m256i magnitude = _mm256_and_si256(h, _mm256_set1_epi16(0x7FFF));
  return _mm256_min_epu16(code,
                          _mm256_sub_epi16(magnitude, _mm256_set1_epi16(1)));
}

NG_AVX512_INLINE uint16_t MinCode(__m256i code) {
  const __m128i m = _mm_min_epu16(_mm256_castsi256_si128(code),
                                  _mm256_extracti128_si256(code, 1));
  return static_cast<uint16_t>(_mm_cvtsi128_si32(_mm_minpos_epu16(m)));
}

// The norm input of the 16 elements from j (masked), with the residual
// written back (and, in engine order, the unrounded sums kept in `sums`);
// folds their ulp codes into `code`.
template <DType X, bool kResidual, bool kHf>
NG_AVX512_INLINE __m512 Input16(const char* x, char* res, float* sums,
                                int64_t j, __mmask16 m, __m256i* code) {
  using H = Half<X>;
  const __m256i xh = Load16(x, j, m);
  if (!kResidual) {
    *code = FoldCode(*code, xh);
    return H::ToFloat(xh);
  }
  const __m256i rh = Load16(res, j, m);
  const __m512 s = _mm512_add_ps(H::ToFloat(xh), H::ToFloat(rh));
  const __m256i rounded = H::Encode(s);
  Store16(res, j, m, rounded);
  if (kHf) {
    *code = FoldCode(*code, rounded);
    return H::ToFloat(rounded);
  }
  // s, rounded to float32, is still a multiple of the smaller ulp of x and
  // the residual.
  *code = FoldCode(FoldCode(*code, xh), rh);
  StoreFloat16(sums + j, m, s);
  return s;
}

// Input16, and the squares of the norm input added to lo (lanes 0-7) and hi.
template <DType X, bool kResidual, bool kHf>
NG_AVX512_INLINE void AddSquares16(const char* x, char* res, float* sums,
                                   int64_t j, __mmask16 m, __m256i* code,
                                   __m512d* lo, __m512d* hi) {
  const __m512 v = Input16<X, kResidual, kHf>(x, res, sums, j, m, code);
  if (!kResidual || kHf) {  // a 16-bit value: float32 holds its square
    const __m512 sq = _mm512_mul_ps(v, v);
    *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
    *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(sq, 1)));
  } else {
    const __m512d vl = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d vh = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
    *lo = _mm512_add_pd(*lo, _mm512_mul_pd(vl, vl));
    *hi = _mm512_add_pd(*hi, _mm512_mul_pd(vh, vh));
  }
}

// Without a residual, a whole block of x, 32 elements per load: their squares
// added to lo and hi in another order (bf16 widened by interleaving with
// zeros), which does not change an exact sum. Returns the block's ulp codes.
template <DType X>
NG_AVX512_INLINE __m256i AddSquaresOfBlock(const char* x, __m512d* lo,
                                           __m512d* hi) {
  __m512i code = _mm512_set1_epi16(-1);
  for (int half = 0; half < 2; ++half) {
    const __m512i h = _mm512_loadu_si512(x + 64 * half);
    code = _mm512_min_epu16(
        code, _mm512_sub_epi16(_mm512_and_si512(h, _mm512_set1_epi16(0x7FFF)),
                               _mm512_set1_epi16(1)));
    __m512 f[2];
    if constexpr (X == DType::kBF16) {
      f[0] =
          _mm512_castsi512_ps(_mm512_unpacklo_epi16(_mm512_setzero_si512(), h));
      f[1] =
          _mm512_castsi512_ps(_mm512_unpackhi_epi16(_mm512_setzero_si512(), h));
    } else {
      f[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
      f[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
    }
    for (const __m512 v : f) {  // a 16-bit value: float32 holds its square
      const __m512 sq = _mm512_mul_ps(v, v);
      *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
      *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(sq, 1)));
    }
  }
  return _mm256_min_epu16(_mm512_castsi512_si256(code),
                          _mm512_extracti64x4_epi64(code, 1));
}

// The sums of squares of 8 blocks, one per accumulator (lanes in any order),
// as [b0, b1, ..., b7].
NG_AVX512_INLINE __m512d Transpose8(const __m512d* a) {
  __m512d t[4], u[2];
  for (int i = 0; i < 4; ++i) {  // 128-bit lanes 0-1: block 2i, 2-3: 2i + 1
    t[i] = _mm512_add_pd(_mm512_shuffle_f64x2(a[2 * i], a[2 * i + 1], 0x44),
                         _mm512_shuffle_f64x2(a[2 * i], a[2 * i + 1], 0xEE));
  }
  for (int i = 0; i < 2; ++i) {  // 128-bit lane k: block 4i + k
    u[i] = _mm512_add_pd(_mm512_shuffle_f64x2(t[2 * i], t[2 * i + 1], 0x88),
                         _mm512_shuffle_f64x2(t[2 * i], t[2 * i + 1], 0xDD));
  }
  // [b0, b4, b1, b5, b2, b6, b3, b7]
  const __m512d s = _mm512_add_pd(_mm512_unpacklo_pd(u[0], u[1]),
                                  _mm512_unpackhi_pd(u[0], u[1]));
  return _mm512_permutexvar_pd(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), s);
}

// The pairwise tree of the squares of the block from `begin` (its norm input
// read back after pass 1; zeros past the row, which add nothing): TreeSum,
// three levels at a time. Each level adds neighbours, (0, 1), (2, 3), ...,
// gathered into two vectors; the last three levels combine the 8 chunks' sums.
template <DType X, bool kResidual, bool kHf>
NG_AVX512 double BlockTreeSum(const char* x, const char* res, const float* sums,
                              int64_t begin, int64_t n) {
  using H = Half<X>;
  __m512d level[8];
  for (int q = 0; q < 4; ++q) {
    const int64_t j = begin + 16 * q;
    const __mmask16 m = Lanes(n - j);
    const __m512 v = !kResidual ? H::ToFloat(Load16(x, j, m))
                     : kHf      ? H::ToFloat(Load16(res, j, m))
                                : _mm512_maskz_loadu_ps(m, sums + j);
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
    level[2 * q] = _mm512_mul_pd(lo, lo);
    level[2 * q + 1] = _mm512_mul_pd(hi, hi);
  }
  const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
  for (int count = 8; count > 1; count /= 2) {
    for (int i = 0; i < count / 2; ++i) {
      level[i] = _mm512_add_pd(
          _mm512_permutex2var_pd(level[2 * i], even, level[2 * i + 1]),
          _mm512_permutex2var_pd(level[2 * i], odd, level[2 * i + 1]));
    }
  }
  double c[8];  // the chunks' sums
  _mm512_storeu_pd(c, level[0]);
  return ((c[0] + c[1]) + (c[2] + c[3])) + ((c[4] + c[5]) + (c[6] + c[7]));
}

// The row's sum of squares: pass 1 and the tree's upper levels. `block_sums`
// and `codes` hold a sum and a code per block (rounded up to a group).
template <DType X, bool kResidual, bool kHf>
NG_AVX512 double SumOfSquares(const char* x, char* res, float* sums, int64_t n,
                              double* block_sums, uint16_t* codes) {
  using H = Half<X>;
  // The norm input is a 16-bit value, whose square float32 holds exactly.
  constexpr bool kFloatSquares = !kResidual || kHf;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  for (int64_t g = 0; g < blocks; g += kGroup) {
    __m512d acc[kGroup];
    for (int b = 0; b < kGroup; ++b) {
      const int64_t begin = (g + b) * kBlock;
      __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
      __m256i code = _mm256_set1_epi16(-1);
      if (!kResidual && begin + kBlock <= n) {
        code = AddSquaresOfBlock<X>(x + 2 * begin, &lo, &hi);
      } else if (begin + kBlock <= n) {
        for (int64_t j = begin; j < begin + kBlock; j += 16) {
          AddSquares16<X, kResidual, kHf>(x, res, sums, j, kAll, &code, &lo,
                                          &hi);
        }
      } else {
        for (int64_t j = begin; j < n; j += 16) {
          AddSquares16<X, kResidual, kHf>(x, res, sums, j, Lanes(n - j), &code,
                                          &lo, &hi);
        }
      }
      acc[b] = _mm512_add_pd(lo, hi);
      codes[g + b] = MinCode(code);
    }
    _mm512_storeu_pd(block_sums + g, Transpose8(acc));
  }

  // Which blocks' sums are exact: a sum at most 2^52 grains (grain = the
  // square of the block's smallest ulp, 2^(2 (code - bias - stored))), and,
  // for float32 squares of bf16 values, no square below 2^-149 (ulp exponent
  // at least -74, i.e. code >= 60).
  for (int64_t g = 0; g < blocks; g += kGroup) {
    const __m512i code = _mm512_min_epi64(
        _mm512_srli_epi64(_mm512_cvtepu16_epi64(_mm_loadu_si128(
                              reinterpret_cast<const __m128i*>(codes + g))),
                          H::kStored),
        _mm512_set1_epi64(H::kMaxCode));
    const __m512d limit = _mm512_castsi512_pd(_mm512_slli_epi64(
        _mm512_add_epi64(
            _mm512_add_epi64(code, code),
            _mm512_set1_epi64(1023 + 52 - 2 * (H::kBias + H::kStored))),
        52));
    __mmask8 exact =
        _mm512_cmp_pd_mask(_mm512_loadu_pd(block_sums + g), limit, _CMP_LE_OQ);
    if (kFloatSquares && X == DType::kBF16) {
      exact &= _mm512_cmpge_epi64_mask(code, _mm512_set1_epi64(60));
    }
    for (int b = 0; b < kGroup && g + b < blocks; ++b) {
      if ((exact >> b) & 1) continue;
      block_sums[g + b] =
          BlockTreeSum<X, kResidual, kHf>(x, res, sums, (g + b) * kBlock, n);
    }
  }

  // The tree's upper levels, over the blocks' sums padded with zeros to a
  // power of two (an odd one out is paired with a zero: itself).
  for (int64_t m = blocks; m > 1; m = (m + 1) / 2) {
    for (int64_t i = 0; i < m / 2; ++i) {
      block_sums[i] = block_sums[2 * i] + block_sums[2 * i + 1];
    }
    if (m & 1) block_sums[m / 2] = block_sums[m - 1];
  }
  return block_sums[0];
}

// numerics::Silu, lanewise, as avx2::Silu8 computes it (g clamped to
// [-89, 64], the special cases left to the division). (Checked against the
// scalar Silu on all 2^32 inputs; kernels tests and the cpu_kernel_fuzzer
// compare every path with the scalar definition.)
NG_AVX512_INLINE __m512 Silu(__m512 g) {
  const __m512 clamped = _mm512_min_ps(_mm512_max_ps(g, _mm512_set1_ps(-89.0f)),
                                       _mm512_set1_ps(64.0f));
  const __m512 c = _mm512_sub_ps(_mm512_setzero_ps(), clamped);  // -g
  const __m512 offset = _mm512_set1_ps(numerics::kExpIntegerOffset);
  const __m512 n = _mm512_sub_ps(
      _mm512_fmadd_ps(c, _mm512_set1_ps(numerics::kExpLog2e), offset), offset);
  const __m512 r = _mm512_fnmadd_ps(
      n, _mm512_set1_ps(numerics::kExpLn2Lo),
      _mm512_fnmadd_ps(n, _mm512_set1_ps(numerics::kExpLn2Hi), c));
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  for (const float k : {1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f,
                        0.5f, 1.0f, 1.0f}) {
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(k));
  }
  // (p * 2^(n/2)) * 2^(n - n/2), as ExpF32 computes it: the first product is
  // exact (a normal float times a power of two, in range), so the result is
  // p * 2^n rounded once, which is what VSCALEFPS gives (round to nearest
  // even, overflow included): one instruction instead of the two factors'
  // integer arithmetic and two multiplications.
  const __m512 e = _mm512_scalef_ps(p, n);
  return _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// Where Output16 takes the weight from: the call's weight (16-bit, widened,
// or the f32 scale), the same while also storing the widened 16-bit weight
// in `wide` (a call's first row), or `wide` (its later rows: no widening).
enum class WeightFrom { kCall, kCallStoringWide, kWide };

// numerics::NormOutput<X, X> of the 16 elements from j (masked), stored.
template <DType X, bool kResidual, bool kHf, bool kScale, bool kGated,
          WeightFrom kFrom>
NG_AVX512_INLINE void Output16(const void* weight, float* wide, const char* x,
                               const char* res, const float* sums,
                               const char* gate, char* out, __m512 r, int64_t j,
                               __mmask16 m) {
  using H = Half<X>;
  const __m512 v = !kResidual ? H::ToFloat(Load16(x, j, m))
                   : kHf      ? H::ToFloat(Load16(res, j, m))
                              : LoadFloat16(sums + j, m);
  __m512 w;
  if constexpr (kScale) {
    w = LoadFloat16(static_cast<const float*>(weight) + j, m);
  } else if constexpr (kFrom == WeightFrom::kWide) {
    w = LoadFloat16(wide + j, m);
  } else {
    w = H::ToFloat(Load16(static_cast<const char*>(weight), j, m));
    if (kFrom == WeightFrom::kCallStoringWide) StoreFloat16(wide + j, m, w);
  }
  const __m512 normed = _mm512_mul_ps(v, r);
  if constexpr (X == DType::kBF16 && kHf && !kScale && !kGated) {
    // R(w * R(normed)) with one NaN / subnormal test for both roundings
    // (H::Narrow); where a lane has one, the general code below.
    const __m512 o = _mm512_mul_ps(w, H::ToFloat(H::Narrow(normed)));
    if ((_mm512_fpclass_ps_mask(normed, kNan | kDenormal) |
         _mm512_fpclass_ps_mask(o, kNan | kDenormal)) == 0) {
      Store16(out, j, m, H::Narrow(o));
      return;
    }
  }
  __m512 o;
  if (kScale || !kHf) {
    o = _mm512_mul_ps(normed, w);
  } else {
    o = _mm512_mul_ps(w, H::Round(normed));
    if (kGated) o = H::Round(o);
  }
  if (kGated) o = _mm512_mul_ps(o, Silu(H::ToFloat(Load16(gate, j, m))));
  Store16(out, j, m, H::Encode(o));
}

// Output16 over a row of n elements.
template <DType X, bool kResidual, bool kHf, bool kScale, bool kGated,
          WeightFrom kFrom>
NG_AVX512_INLINE void OutputRow(const void* weight, float* wide, const char* x,
                                const char* res, const float* sums,
                                const char* gate, char* out, __m512 r,
                                int64_t n) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    Output16<X, kResidual, kHf, kScale, kGated, kFrom>(
        weight, wide, x, res, sums, gate, out, r, j, kAll);
  }
  if (j < n) {
    Output16<X, kResidual, kHf, kScale, kGated, kFrom>(
        weight, wide, x, res, sums, gate, out, r, j, Lanes(n - j));
  }
}

// Every row; `sums` (the unrounded norm input, engine order with a residual),
// `wide` (the weight widened to f32 by the first row, for the others),
// `block_sums` and `codes` are scratch.
template <DType X, bool kResidual, bool kHf, bool kScale, bool kGated>
NG_AVX512 void Rows(const RmsNormParams& p, float* sums, float* wide,
                    double* block_sums, uint16_t* codes) {
  const int64_t n = p.cols;
  for (int64_t row = 0; row < p.rows; ++row) {
    const char* x = RowOf<X>(p.x, row, p.x_stride);
    char* res =
        kResidual
            ? const_cast<char*>(RowOf<X>(p.residual, row, p.residual_stride))
            : nullptr;
    const char* gate = kGated ? RowOf<X>(p.gate, row, p.gate_stride) : nullptr;
    char* out = const_cast<char*>(RowOf<X>(p.out, row, p.out_stride));
    const float r = numerics::InvRms(
        SumOfSquares<X, kResidual, kHf>(x, res, sums, n, block_sums, codes), n,
        p.eps);

    const __m512 rv = _mm512_set1_ps(r);
    if (kScale || p.rows == 1) {
      OutputRow<X, kResidual, kHf, kScale, kGated, WeightFrom::kCall>(
          p.weight, wide, x, res, sums, gate, out, rv, n);
    } else if (row == 0) {
      OutputRow<X, kResidual, kHf, kScale, kGated,
                WeightFrom::kCallStoringWide>(p.weight, wide, x, res, sums,
                                              gate, out, rv, n);
    } else {
      OutputRow<X, kResidual, kHf, kScale, kGated, WeightFrom::kWide>(
          p.weight, wide, x, res, sums, gate, out, rv, n);
    }
  }
}

#undef NG_AVX512
#undef NG_AVX512_INLINE

}  // namespace avx512

bool CpuHasAvx2F16cAndFma() {
  static const bool has = [] {
    __builtin_cpu_init();
    // F16C and FMA are CPUID.1:ECX bits 29 and 12 (not every compiler's
    // __builtin_cpu_supports knows F16C).
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c_and_fma = __get_cpuid(1, &eax, &ebx, &ecx, &edx) &&
                              (ecx >> 29) & 1 && (ecx >> 12) & 1;
    return __builtin_cpu_supports("avx2") && f16c_and_fma;
  }();
  return has;
}

// AVX512F, BW, VL, DQ and BF16 (CPUID.7.0:EBX bits 16, 17, 30, 31;
// CPUID.7.1:EAX bit 5), with the OS saving the opmask and ZMM state (XCR0
// bits 5-7, and 1-2 for SSE and AVX).
bool CpuHasAvx512() {
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!CpuHasAvx2F16cAndFma() || !__get_cpuid(1, &eax, &ebx, &ecx, &edx) ||
        !((ecx >> 27) & 1)) {  // OSXSAVE: XGETBV is there
      return false;
    }
    unsigned xcr0 = 0, xcr0_high = 0;
    __asm__("xgetbv" : "=a"(xcr0), "=d"(xcr0_high) : "c"(0));
    if ((xcr0 & 0xE6u) != 0xE6u) return false;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    const unsigned kF = 1u << 16, kDq = 1u << 17, kBw = 1u << 30,
                   kVl = 1u << 31;
    if ((ebx & (kF | kDq | kBw | kVl)) != (kF | kDq | kBw | kVl)) return false;
    return __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax >> 5) & 1;
  }();
  return has;
}

// Activations, weight (or the f32 scale) and output all of one 16-bit dtype.
bool SixteenBitRows(const RmsNormParams& p) {
  const bool half = p.x_dtype == DType::kBF16 || p.x_dtype == DType::kF16;
  const bool weight = p.weight_kind == NormWeight::kScale
                          ? p.weight_dtype == DType::kF32
                          : p.weight_dtype == p.x_dtype;
  return half && weight && p.out_dtype == p.x_dtype;
}

bool Applies(CpuPath path, const RmsNormParams& p) {
  switch (path) {
    case CpuPath::kScalar:
      return true;
    case CpuPath::kAvx2:
      return SixteenBitRows(p) && CpuHasAvx2F16cAndFma();
    case CpuPath::kAvx512:
      return SixteenBitRows(p) && CpuHasAvx512();
  }
  return false;
}

void Avx2RmsNorm(const RmsNormParams& p) {
  // Per-thread scratch that only grows: a replayed graph allocates nothing
  // after warm-up.
  thread_local std::vector<float> v;
  thread_local std::vector<uint32_t> codes;
  thread_local std::vector<double> block_sums;
  if (static_cast<int64_t>(v.size()) < p.cols + 8) {
    v.resize(p.cols + 8);
    codes.resize(p.cols / avx2::kBlock + 1);
    block_sums.resize(p.cols / avx2::kBlock + 1);
  }
  const auto rows = RowsFor(p, [](auto x, auto form) {
    using F = decltype(form);
    return &avx2::Rows<decltype(x)::value, F::kResidual, F::kHf, F::kScale,
                       F::kGated>;
  });
  rows(p, v.data(), codes.data(), block_sums.data());
}

void Avx512RmsNorm(const RmsNormParams& p) {
  // Per-thread scratch that only grows, as above.
  thread_local std::vector<float> sums;
  thread_local std::vector<float> wide;
  thread_local std::vector<double> block_sums;
  thread_local std::vector<uint16_t> codes;
  const int64_t blocks = (p.cols + avx512::kBlock * avx512::kGroup - 1) /
                         (avx512::kBlock * avx512::kGroup) * avx512::kGroup;
  if (static_cast<int64_t>(sums.size()) < p.cols) {
    sums.resize(p.cols);
    wide.resize(p.cols);
  }
  if (static_cast<int64_t>(codes.size()) < blocks) {
    block_sums.resize(blocks);
    codes.resize(blocks);
  }
  const auto rows = RowsFor(p, [](auto x, auto form) {
    using F = decltype(form);
    return &avx512::Rows<decltype(x)::value, F::kResidual, F::kHf, F::kScale,
                         F::kGated>;
  });
  rows(p, sums.data(), wide.data(), block_sums.data(), codes.data());
}

#else  // no fast path on this architecture

bool Applies(CpuPath path, const RmsNormParams&) {
  return path == CpuPath::kScalar;
}
void Avx2RmsNorm(const RmsNormParams&) {}
void Avx512RmsNorm(const RmsNormParams&) {}

#endif  // NG_HAVE_FAST_PATH

}  // namespace

float Silu(float g) { return numerics::Silu(g); }

void LoadNormInput(const RmsNormParams& p, int64_t row, float* v) {
  WithDType(p.x_dtype,
            [&](auto x) { LoadNormInputT<decltype(x)::value>(p, row, v); });
}

float InvRms(const float* v, int64_t cols, float eps) {
  numerics::PairwiseAccumulator<> sum;
  for (int64_t j = 0; j < cols; j += numerics::kChunk) {
    const int64_t left = cols - j;
    sum.Add(numerics::ChunkSumOfSquares(v + j, left < numerics::kChunk
                                                   ? static_cast<int>(left)
                                                   : numerics::kChunk));
  }
  return numerics::InvRms(sum.Total(), cols, eps);
}

void ApplyNorm(const RmsNormParams& p, int64_t row, const float* v,
               float inv_rms, const float* silu) {
  WithDType(p.x_dtype, [&](auto x) {
    WithDType(p.weight_dtype, [&](auto w) {
      WithDType(p.out_dtype, [&](auto o) {
        ApplyNormT<decltype(x)::value, decltype(w)::value, decltype(o)::value>(
            p, row, v, inv_rms, silu);
      });
    });
  });
}

void RmsNormCpu(const RmsNormParams& p) {
  for (const CpuPath path : {CpuPath::kAvx512, CpuPath::kAvx2}) {
    if (RmsNormCpuOnPath(path, p)) return;
  }
  RmsNormCpuScalar(p);
}

bool RmsNormCpuOnPath(CpuPath path, const RmsNormParams& p) {
  if (!Applies(path, p)) return false;
  if (p.rows == 0) return true;
  switch (path) {
    case CpuPath::kScalar:
      RmsNormCpuScalar(p);
      break;
    case CpuPath::kAvx2:
      Avx2RmsNorm(p);
      break;
    case CpuPath::kAvx512:
      Avx512RmsNorm(p);
      break;
  }
  return true;
}

void RmsNormCpuScalar(const RmsNormParams& p) {
  if (p.rows == 0) return;
  // Per-thread scratch that only grows: a replayed graph allocates nothing
  // after warm-up.
  thread_local std::vector<float> v;
  if (static_cast<int64_t>(v.size()) < p.cols) v.resize(p.cols);
  for (int64_t row = 0; row < p.rows; ++row) {
    LoadNormInput(p, row, v.data());
    ApplyNorm(p, row, v.data(), InvRms(v.data(), p.cols, p.eps), nullptr);
  }
}

void CopyCpu(const CopyParams& p) {
  if (p.bytes > 0) std::memmove(p.dst, p.src, p.bytes);
}

}  // namespace normgraph
