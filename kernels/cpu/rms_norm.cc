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
