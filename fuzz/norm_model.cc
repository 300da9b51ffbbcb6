#include "fuzz/norm_model.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "fuzz/values.h"

namespace normgraph {
namespace fuzz {
namespace {

const uint8_t* Element(const void* base, int64_t row, int64_t stride,
                       int64_t col, DType dtype) {
  return static_cast<const uint8_t*>(base) +
         (row * stride + col) * static_cast<int64_t>(DTypeSize(dtype));
}

// `f` rounded to `dtype` and back (R_t of docs/numerics.md).
float Rounded(DType dtype, float f) {
  uint8_t bytes[4];
  StoreValue(dtype, f, bytes);
  return DecodeValue(dtype, bytes);
}

// The balanced pairwise tree of the squares of v (in float64), over v padded
// with zeros to a power of two: pairs (2i, 2i + 1), then pairs of pairs.
double TreeSumOfSquares(const std::vector<float>& v) {
  size_t size = 1;
  while (size < v.size()) size *= 2;
  thread_local std::vector<double> level;  // grows only
  level.assign(size, 0.0);
  for (size_t i = 0; i < v.size(); ++i) {
    level[i] = static_cast<double>(v[i]) * static_cast<double>(v[i]);
  }
  for (; size > 1; size /= 2) {
    for (size_t i = 0; i < size / 2; ++i) {
      level[i] = level[2 * i] + level[2 * i + 1];
    }
  }
  return level[0];
}

// silu(g) = g / (1 + exp(-g)) in float32, the exponential from float64 exp.
float Silu(float g) {
  const float e = static_cast<float>(std::exp(-static_cast<double>(g)));
  const float denominator = 1.0f + e;
  return g / denominator;
}

// Encoded values of `dtype` as integers in the order of their values (-0
// and +0 next to each other), so that neighbours differ by 1.
int64_t OrderedBits(DType dtype, const uint8_t* p) {
  uint32_t bits = 0;
  std::memcpy(&bits, p, DTypeSize(dtype));
  const int sign_bit = 8 * static_cast<int>(DTypeSize(dtype)) - 1;
  const int64_t magnitude = bits & ((uint32_t{1} << sign_bit) - 1);
  return (bits >> sign_bit) ? -magnitude - 1 : magnitude;
}

bool IsNan(DType dtype, const uint8_t* p) {
  const float f = DecodeValue(dtype, p);
  return f != f;
}

}  // namespace

void RunNormModel(const RmsNormParams& p, NormModelOutput* model) {
  const size_t xs = DTypeSize(p.x_dtype);
  const size_t os = DTypeSize(p.out_dtype);
  model->out.assign(p.rows * p.cols * os, 0);
  model->residual.assign(p.residual != nullptr ? p.rows * p.cols * xs : 0, 0);
  const bool hf = p.order == RoundingOrder::kHuggingFace;
  const bool scale = p.weight_kind == NormWeight::kScale;
  const DType w_dtype = scale ? DType::kF32 : p.weight_dtype;
  thread_local std::vector<float> v;  // grows only
  v.resize(p.cols);
  for (int64_t i = 0; i < p.rows; ++i) {
    for (int64_t j = 0; j < p.cols; ++j) {
      const float x =
          DecodeValue(p.x_dtype, Element(p.x, i, p.x_stride, j, p.x_dtype));
      if (p.residual == nullptr) {
        v[j] = x;
        continue;
      }
      const float sum =
          x + DecodeValue(p.x_dtype, Element(p.residual, i, p.residual_stride,
                                             j, p.x_dtype));
      const float rounded = Rounded(p.x_dtype, sum);
      StoreValue(p.x_dtype, rounded,
                 model->residual.data() + (i * p.cols + j) * xs);
      v[j] = hf ? rounded : sum;
    }
    double sum = TreeSumOfSquares(v);
    // float32 accumulation rounds sums from 2^128 - 2^103 up to +inf.
    if (sum >= std::ldexp(1.0, 128) - std::ldexp(1.0, 103)) sum = HUGE_VAL;
    const float r =
        static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(p.cols) +
                                           static_cast<double>(p.eps)));
    for (int64_t j = 0; j < p.cols; ++j) {
      const float w = DecodeValue(w_dtype, Element(p.weight, 0, 0, j, w_dtype));
      const float normed = v[j] * r;
      float o;
      if (scale) {
        o = normed * w;
      } else if (hf) {
        o = w * Rounded(p.x_dtype, normed);
        // The gated form rounds weight * hidden to the promoted dtype of
        // (weight, input): the input's when they are the same, else f32.
        if (p.gate != nullptr && p.weight_dtype == p.x_dtype) {
          o = Rounded(p.x_dtype, o);
        }
      } else {
        o = normed * w;
      }
      if (p.gate != nullptr) {
        o = o * Silu(DecodeValue(p.x_dtype, Element(p.gate, i, p.gate_stride, j,
                                                    p.x_dtype)));
      }
      StoreValue(p.out_dtype, o, model->out.data() + (i * p.cols + j) * os);
    }
  }
}

std::string CompareWithNormModel(const RmsNormParams& p,
                                 const NormModelOutput& model) {
  auto compare = [&](const char* what, const void* base, int64_t stride,
                     DType dtype, const std::vector<uint8_t>& want,
                     int ulps_allowed) -> std::string {
    const size_t es = DTypeSize(dtype);
    for (int64_t i = 0; i < p.rows; ++i) {
      for (int64_t j = 0; j < p.cols; ++j) {
        const uint8_t* have = Element(base, i, stride, j, dtype);
        const uint8_t* expected = want.data() + (i * p.cols + j) * es;
        if (std::memcmp(have, expected, es) == 0) continue;
        if (IsNan(dtype, have) && IsNan(dtype, expected)) continue;
        if (!IsNan(dtype, have) && !IsNan(dtype, expected) &&
            std::llabs(OrderedBits(dtype, have) -
                       OrderedBits(dtype, expected)) <= ulps_allowed) {
          continue;
        }
        return absl::StrCat(what, "[", i, ", ", j,
                            "] = ", ValueText(dtype, have), ", the model ",
                            ValueText(dtype, expected));
      }
    }
    return "";
  };
  std::string diff =
      compare("out", p.out, p.out_stride, p.out_dtype, model.out,
              p.gate != nullptr ? GatedUlpsAllowed(p.out_dtype) : 0);
  if (diff.empty() && p.residual != nullptr) {
    diff = compare("residual", p.residual, p.residual_stride, p.x_dtype,
                   model.residual, 0);
  }
  return diff;
}

}  // namespace fuzz
}  // namespace normgraph
