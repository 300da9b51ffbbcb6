#include "kernels/cpu/rms_norm.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define NG_HAVE_FAST_PATH 1
#else
#define NG_HAVE_FAST_PATH 0
#endif

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
//   runs), with branch-free 16-bit conversions (bf16: the same integer
//   round-to-nearest-even as core/float_bits.h, lanewise; f16: the F16C
//   instructions, which agree with core/float_bits.h on every non-NaN value,
//   checked exhaustively);
// - loading 8 weights at a time as they are needed;
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
namespace fast {

#define NG_FAST __attribute__((always_inline, target("avx2,f16c"))) inline
#define NG_AVX2 __attribute__((target("avx2,f16c")))

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

// Lanewise comparisons as masks (all ones or all zeros). Every value compared
// is below 2^31, so signed compares (which SSE and AVX2 have) are exact.
NG_FAST U8 Gt(U8 a, uint32_t b) {
  return (U8)((I8)a > static_cast<int32_t>(b));
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

// Every row; `v` and `codes` are scratch.
template <DType X, bool kResidual, bool kHf, bool kScale>
NG_AVX2 void Rows(const RmsNormParams& p, float* v, uint32_t* codes) {
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
      const F8 wv = Weight8<X, kScale>(p.weight, j);
      F8 o;
      if (kScale || !kHf) {
        o = normed * wv;
      } else {
        o = wv * Round<X>(normed);
      }
      StoreOutput<X>(out + 2 * j, o);
    }
    for (int64_t j = vec_end; j < n; ++j) {
      const float w =
          kScale ? Load<DType::kF32>(p.weight, j) : Load<X>(p.weight, j);
      const float o =
          numerics::NormOutput<X, X>(v[j], r, w, kScale, kHf, false, 0.0f);
      Store<X>(out, j, EncodeOutput<X>(o));
    }
  }
}

using RowsFn = void (*)(const RmsNormParams&, float*, uint32_t*);

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

bool CpuHasAvx2AndF16c() {
  static const bool has = [] {
    __builtin_cpu_init();
    // F16C is CPUID.1:ECX bit 29 (not every compiler's
    // __builtin_cpu_supports knows it).
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx >> 29) & 1;
    return __builtin_cpu_supports("avx2") && f16c;
  }();
  return has;
}

bool FastPathApplies(const RmsNormParams& p) {
  const bool half = p.x_dtype == DType::kBF16 || p.x_dtype == DType::kF16;
  const bool weight = p.weight_kind == NormWeight::kScale
                          ? p.weight_dtype == DType::kF32
                          : p.weight_dtype == p.x_dtype;
  return half && weight && p.out_dtype == p.x_dtype && p.gate == nullptr &&
         CpuHasAvx2AndF16c();
}

void FastRmsNorm(const RmsNormParams& p) {
  // Per-thread scratch that only grows: a replayed graph allocates nothing
  // after warm-up.
  thread_local std::vector<float> v;
  thread_local std::vector<uint32_t> codes;
  if (static_cast<int64_t>(v.size()) < p.cols + 8) {
    v.resize(p.cols + 8);
    codes.resize(p.cols / fast::kBlock + 1);
  }
  const bool scale = p.weight_kind == NormWeight::kScale;
  const bool residual = p.residual != nullptr;
  const bool hf = p.order == RoundingOrder::kHuggingFace;
  const fast::RowsFn rows = p.x_dtype == DType::kBF16
                                ? fast::Pick<DType::kBF16>(residual, hf, scale)
                                : fast::Pick<DType::kF16>(residual, hf, scale);
  rows(p, v.data(), codes.data());
}

#else  // no fast path on this architecture

bool FastPathApplies(const RmsNormParams&) { return false; }
void FastRmsNorm(const RmsNormParams&) {}

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
