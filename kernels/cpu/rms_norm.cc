#include "kernels/cpu/rms_norm.h"

#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/dtype.h"

namespace normgraph {
namespace {

template <typename T>
inline float Load(const void* base, int64_t i) {
  T v;
  std::memcpy(&v, static_cast<const char*>(base) + i * sizeof(T), sizeof(T));
  return ToFloat(v);
}

template <typename T>
inline void Store(void* base, int64_t i, float f) {
  const T v = FromFloat<T>(f);
  std::memcpy(static_cast<char*>(base) + i * sizeof(T), &v, sizeof(T));
}

template <typename T>
inline float Round(float f) {
  return ToFloat(FromFloat<T>(f));
}

// Calls f(X{}) with the C++ type of `dtype`.
template <typename F>
void WithType(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kF32:
      f(float{});
      return;
    case DType::kBF16:
      f(Bf16{});
      return;
    case DType::kF16:
      f(F16{});
      return;
  }
}

template <typename X>
void LoadNormInputT(const RmsNormParams& p, int64_t row, float* v) {
  const void* x = static_cast<const char*>(p.x) + row * p.x_stride * sizeof(X);
  if (p.residual == nullptr) {
    for (int64_t j = 0; j < p.cols; ++j) v[j] = Load<X>(x, j);
    return;
  }
  void* res =
      static_cast<char*>(p.residual) + row * p.residual_stride * sizeof(X);
  const bool hf = p.order == RoundingOrder::kHuggingFace;
  for (int64_t j = 0; j < p.cols; ++j) {
    const float sum = Load<X>(x, j) + Load<X>(res, j);
    const float rounded = Round<X>(sum);
    Store<X>(res, j, rounded);
    v[j] = hf ? rounded : sum;
  }
}

template <typename X, typename W, typename O>
void ApplyNormT(const RmsNormParams& p, int64_t row, const float* v, float r,
                const float* silu) {
  void* out = static_cast<char*>(p.out) + row * p.out_stride * sizeof(O);
  const void* gate = p.gate == nullptr ? nullptr
                                       : static_cast<const char*>(p.gate) +
                                             row * p.gate_stride * sizeof(X);
  const bool hf = p.order == RoundingOrder::kHuggingFace;
  if (p.weight_kind == NormWeight::kScale) {
    for (int64_t j = 0; j < p.cols; ++j) {
      const float n = v[j] * r;
      Store<O>(out, j, n * Load<float>(p.weight, j));
    }
    return;
  }
  for (int64_t j = 0; j < p.cols; ++j) {
    const float n = v[j] * r;
    const float w = Load<W>(p.weight, j);
    float o;
    if (hf) {
      o = w * Round<X>(n);  // weight * hidden.to(input_dtype)
      if (gate != nullptr) {
        // The product has the promoted dtype of (weight, input): round to it,
        // then gate in f32.
        if (std::is_same<W, X>::value) o = Round<X>(o);
        o = o * (silu != nullptr ? silu[j] : Silu(Load<X>(gate, j)));
      }
    } else {
      o = n * w;
      if (gate != nullptr)
        o = o * (silu != nullptr ? silu[j] : Silu(Load<X>(gate, j)));
    }
    Store<O>(out, j, o);
  }
}

}  // namespace

float Silu(float g) { return g / (1.0f + std::exp(-g)); }

void LoadNormInput(const RmsNormParams& p, int64_t row, float* v) {
  WithType(p.x_dtype, [&](auto x) { LoadNormInputT<decltype(x)>(p, row, v); });
}

float InvRms(const float* v, int64_t cols, float eps) {
  constexpr int kLanes = 32;
  float lanes[kLanes] = {};
  for (int64_t j = 0; j < cols; ++j) {
    const float sq = v[j] * v[j];
    lanes[j % kLanes] += sq;
  }
  for (int width = kLanes / 2; width >= 1; width /= 2) {
    for (int i = 0; i < width; ++i) lanes[i] += lanes[i + width];
  }
  const float mean = lanes[0] / static_cast<float>(cols);
  return 1.0f / std::sqrt(mean + eps);
}

void ApplyNorm(const RmsNormParams& p, int64_t row, const float* v,
               float inv_rms, const float* silu) {
  WithType(p.x_dtype, [&](auto x) {
    WithType(p.weight_dtype, [&](auto w) {
      WithType(p.out_dtype, [&](auto o) {
        ApplyNormT<decltype(x), decltype(w), decltype(o)>(p, row, v, inv_rms,
                                                          silu);
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
