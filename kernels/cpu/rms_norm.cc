#include "kernels/cpu/rms_norm.h"

#include <cstring>
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

// --- The fast path
// ------------------------------------------------------------
//
// Rows of 16-bit activations (bf16, f16) whose output has the activation dtype
// and no gate: every norm of the decoder stacks but the gated one. Same
// numerics, bit for bit (kernels/norm_numerics.h); faster by
// - working on 8 lanes at a time (GCC/Clang vector extensions compiled for
//   AVX2, chosen at run time where the CPU has it; elsewhere RmsNormCpuScalar
//   runs), with branch-free 16-bit conversions (the same integer
//   round-to-nearest-even as core/float_bits.h, lanewise);
// - decoding the weight once per call instead of once per element and row;
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

namespace fast {

#define NG_FAST __attribute__((always_inline, target("avx2"))) inline
#define NG_AVX2 __attribute__((target("avx2")))

typedef float F8 __attribute__((vector_size(32)));
typedef uint32_t U8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));
typedef uint16_t H8 __attribute__((vector_size(16)));
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

// Lanewise comparisons as masks (all ones or all zeros). Every value compared
// is below 2^31, so signed compares (which SSE and AVX2 have) are exact.
NG_FAST U8 Gt(U8 a, uint32_t b) {
  return (U8)((I8)a > static_cast<int32_t>(b));
}
NG_FAST U8 Lt(U8 a, uint32_t b) {
  return (U8)((I8)a < static_cast<int32_t>(b));
}
NG_FAST U8 Eq(U8 a, uint32_t b) { return (U8)(a == b); }

// mask ? a : b, lanewise.
NG_FAST U8 Select(U8 mask, U8 a, U8 b) { return (mask & a) | (~mask & b); }

NG_FAST U8 MinLanes(U8 a, U8 b) { return Select((U8)((I8)a < (I8)b), a, b); }

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
struct Format<DType::kF16> {
  static constexpr int kStored = 10;
  static constexpr int kBias = 15;
  static constexpr uint32_t kExponentMask = 0x1F;

  // F16BitsToFloat lanewise. Subnormals are m * 2^-24, computed as
  // float(m) * 2^-24: exact, and neither operand nor result is subnormal in
  // float32, so flush-to-zero settings cannot change it.
  NG_FAST static U8 Decode(U8 h) {
    const U8 sign = (h & 0x8000u) << 16;
    const U8 exponent = (h >> 10) & 0x1Fu;
    const U8 mantissa = h & 0x3FFu;
    const U8 normal = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    const U8 special = sign | 0x7F800000u | (mantissa << 13);
    const F8 sub =
        __builtin_convertvector((I8)mantissa, F8) * 5.9604644775390625e-8f;
    const U8 subnormal = sign | Bits(sub);
    return Select(Eq(exponent, 0u), subnormal,
                  Select(Eq(exponent, 0x1Fu), special, normal));
  }

  // FloatToF16Bits lanewise: round to nearest even with subnormals; NaN ->
  // sign | 0x7E00; at or past 65520 -> infinity.
  NG_FAST static U8 Encode(F8 f) {
    const U8 u = Bits(f);
    const U8 sign = (u >> 16) & 0x8000u;
    const U8 magnitude = u & 0x7FFFFFFFu;
    // Normal f16 results: rebias, drop 13 bits, round to nearest even.
    const U8 rebased = magnitude - ((127u - 15u) << 23);
    const U8 q = rebased >> 13;
    const U8 rest = rebased & 0x1FFFu;
    const U8 up = Gt(rest, 0x1000u) | (Eq(rest, 0x1000u) & Eq(q & 1u, 1u));
    const U8 normal = q - up;  // up lanes are all ones: subtracting adds 1
    // Subnormal f16 results (2^-25 < |f| < 2^-14): |f| 2^24, an exact value
    // in (0.5, 1024), rounded to an integer by adding and subtracting 2^23
    // (nearest even). Other lanes are zeroed first, so every conversion is in
    // range.
    const U8 small = Lt(magnitude, 0x38800000u);
    const F8 scaled = Floats(small & magnitude) * 16777216.0f;
    const F8 integral = (scaled + 8388608.0f) - 8388608.0f;
    const U8 sub_q = (U8) __builtin_convertvector(integral, I8);
    U8 r = Select(small, sub_q, normal);
    r = Select(Lt(magnitude, 0x33000001u), U8{}, r);  // rounds to zero
    r = Select(Gt(magnitude, 0x477FEFFFu), U8{} + 0x7C00u, r);  // infinity
    r = Select(Gt(magnitude, 0x7F800000u), U8{} + 0x7E00u, r);  // NaN
    return sign | r;
  }
  // EncodeOutput: every NaN is the canonical positive 0x7E00.
  NG_FAST static U8 EncodeOutput(F8 f) {
    const U8 nan = Gt(Bits(f) & 0x7FFFFFFFu, 0x7F800000u);
    return Select(nan, U8{} + 0x7E00u, Encode(f));
  }
};

template <DType X>
NG_FAST F8 Round(F8 f) {
  return Floats(Format<X>::Decode(Format<X>::Encode(f)));
}

// The biased exponent of the unit in the last place of each non-zero 16-bit
// value (the exponent field, 1 for subnormals); 0xFFFF for zeros.
template <DType X>
NG_FAST U8 UlpExponentCode(U8 h) {
  using F = Format<X>;
  const U8 e = (h >> F::kStored) & F::kExponentMask;
  const U8 e1 = Select(Eq(e, 0u), U8{} + 1u, e);
  return Select(Eq(h & 0x7FFFu, 0u), U8{} + 0xFFFFu, e1);
}

NG_FAST uint32_t HorizontalMin(U8 v) {
  uint32_t m = v[0];
  for (int i = 1; i < 8; ++i) m = v[i] < m ? v[i] : m;
  return m;
}

// Whether a computed block sum of squares is exact (see above), from the
// block's smallest ulp exponent code.
template <DType X>
bool BlockSumIsExact(double sum, uint32_t code) {
  if (code == 0xFFFFu) return sum == 0.0;
  const int ulp_exponent =
      static_cast<int>(code) - Format<X>::kBias - Format<X>::kStored;
  return sum <= std::ldexp(1.0, 52 + 2 * ulp_exponent);
}

// The pairwise tree of the squares of v[0, n) (n <= kBlock): what the
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

// The norm input of the 8 elements at j (the residual written back); `code`
// gets their ulp exponent codes.
template <DType X, bool kResidual, bool kHf>
NG_FAST F8 Input8(const char* x, char* res, int64_t j, U8* code) {
  using F = Format<X>;
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

// Every row. `w` is the weight as float (or the f32 scale), decoded once per
// call; `v` and `codes` are scratch.
template <DType X, bool kResidual, bool kHf, bool kScale>
NG_AVX2 void Rows(const RmsNormParams& p, float* v, uint32_t* codes,
                  const float* w) {
  using F = Format<X>;
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
    // each block's smallest ulp.
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t begin = b * kBlock;
      const int64_t end = begin + kBlock < vec_end ? begin + kBlock : vec_end;
      U8 least = U8{} + 0xFFFFu;
      for (int64_t j = begin; j < end; j += 8) {
        U8 code;
        StoreV(v + j, Input8<X, kResidual, kHf>(x, res, j, &code));
        least = MinLanes(least, code);
      }
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
      double sum = 0.0;
      bool exact = false;
      if (codes[b] != 0) {  // then size is a multiple of 8
        D4 acc0 = {}, acc1 = {};
        for (int64_t j = begin; j < begin + size; j += 8) {
          const F8 f = LoadV<F8>(v + j);
          const D4 lo = __builtin_convertvector(
              __builtin_shufflevector(f, f, 0, 1, 2, 3), D4);
          const D4 hi = __builtin_convertvector(
              __builtin_shufflevector(f, f, 4, 5, 6, 7), D4);
          acc0 += lo * lo;
          acc1 += hi * hi;
        }
        const D4 acc = acc0 + acc1;
        sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        exact = BlockSumIsExact<X>(sum, codes[b]);
      }
      if (!exact) sum = TreeSum(v + begin, size);
      total.Add(sum);
    }
    const float r = numerics::InvRms(total.Total(), n, p.eps);

    // The output.
    const F8 rv = F8{} + r;
    for (int64_t j = 0; j < vec_end; j += 8) {
      const F8 normed = LoadV<F8>(v + j) * rv;
      const F8 wv = LoadV<F8>(w + j);
      F8 o;
      if (kScale || !kHf) {
        o = normed * wv;
      } else {
        o = wv * Round<X>(normed);
      }
      Narrow(out + 2 * j, F::EncodeOutput(o));
    }
    for (int64_t j = vec_end; j < n; ++j) {
      const float o =
          numerics::NormOutput<X, X>(v[j], r, w[j], kScale, kHf, false, 0.0f);
      Store<X>(out, j, EncodeOutput<X>(o));
    }
  }
}

using RowsFn = void (*)(const RmsNormParams&, float*, uint32_t*, const float*);

template <DType X>
RowsFn Pick(bool residual, bool hf, bool scale) {
  if (residual) {
    if (hf) {
      return scale ? Rows<X, true, true, true> : Rows<X, true, true, false>;
    }
    return scale ? Rows<X, true, false, true> : Rows<X, true, false, false>;
  }
  if (hf) {
    return scale ? Rows<X, false, true, true> : Rows<X, false, true, false>;
  }
  return scale ? Rows<X, false, false, true> : Rows<X, false, false, false>;
}

#undef NG_FAST
#undef NG_AVX2

}  // namespace fast

bool CpuHasAvx2() {
  static const bool avx2 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return avx2;
}

bool FastPathApplies(const RmsNormParams& p) {
  const bool half = p.x_dtype == DType::kBF16 || p.x_dtype == DType::kF16;
  const bool weight = p.weight_kind == NormWeight::kScale
                          ? p.weight_dtype == DType::kF32
                          : p.weight_dtype == p.x_dtype;
  return half && weight && p.out_dtype == p.x_dtype && p.gate == nullptr &&
         CpuHasAvx2();
}

void FastRmsNorm(const RmsNormParams& p) {
  // Per-thread scratch that only grows: a replayed graph allocates nothing
  // after warm-up.
  thread_local std::vector<float> v, w;
  thread_local std::vector<uint32_t> codes;
  if (static_cast<int64_t>(v.size()) < p.cols + 8) {
    v.resize(p.cols + 8);
    w.resize(p.cols + 8);
    codes.resize(p.cols / fast::kBlock + 1);
  }
  const bool scale = p.weight_kind == NormWeight::kScale;
  for (int64_t j = 0; j < p.cols; ++j) {
    w[j] = scale                            ? Load<DType::kF32>(p.weight, j)
           : p.weight_dtype == DType::kBF16 ? Load<DType::kBF16>(p.weight, j)
                                            : Load<DType::kF16>(p.weight, j);
  }
  const bool residual = p.residual != nullptr;
  const bool hf = p.order == RoundingOrder::kHuggingFace;
  const fast::RowsFn rows = p.x_dtype == DType::kBF16
                                ? fast::Pick<DType::kBF16>(residual, hf, scale)
                                : fast::Pick<DType::kF16>(residual, hf, scale);
  rows(p, v.data(), codes.data(), w.data());
}

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
  if (FastPathApplies(p)) {
    FastRmsNorm(p);
    return;
  }
  RmsNormCpuScalar(p);
}

void RmsNormCpuScalar(const RmsNormParams& p) {
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
