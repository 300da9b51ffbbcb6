#ifndef NORMGRAPH_KERNELS_RMS_NORM_PARAMS_H_
#define NORMGRAPH_KERNELS_RMS_NORM_PARAMS_H_

// Parameters of the one row-normalisation kernel that implements every norm
// variant of docs/numerics.md. With xf = float(x) and r = 1 / sqrt(mean(xf *
// xf) + eps) (the squares summed in float64 by a fixed pairwise tree over
// 8-element chunks, the same on every backend: kernels/norm_numerics.h),
// R_t(.) = round to dtype t (nearest even):
//
// clang-format off
//   weight_kind  order         gate?  out                                      as in
//   kMultiply    kHuggingFace  no     R_out(float(w) * R_x(xf * r))             LlamaRMSNorm, Qwen3RMSNorm
//   kMultiply    kEngine       no     R_out((xf * r) * float(w))                vLLM / FlashInfer
//   kScale       either        no     R_out((xf * r) * scale)                   Gemma, Qwen3.5 (scale = 1 + w,
//                                                                               f32, precomputed)
//   kMultiply    kHuggingFace  yes    t = R_p(float(w) * R_x(xf * r)),          Qwen3_5RMSNormGated
//                                     p = promote(x, w); R_x(t * silu(float(gate)))
//   kMultiply    kEngine       yes    R_x((xf * r) * float(w) * silu(gate))     FLA, one rounding
// clang-format on
//
// With a residual: s = float(x) + float(residual); residual <- R_x(s) (in
// place); the norm input is R_x(s) in HF order (the decoder layer adds in the
// activation dtype, then normalises) and the unrounded float sum s in engine
// order (SGLang's fused kernels).
//
// Rows are strided: element (i, j) of x is x[i * x_stride + j] (likewise for
// the other tensors). Pointers may be unaligned. gate and residual have the
// activation dtype.

#include <cstdint>

#include "absl/status/status.h"
#include "core/dtype.h"

namespace normgraph {

enum class NormWeight : uint8_t {
  kMultiply,  // weight in weight_dtype, multiplied in (init: ones)
  kScale,     // a precomputed float32 scale, e.g. 1 + w of a zero-centred norm
};

enum class RoundingOrder : uint8_t {
  kHuggingFace,  // round exactly where transformers rounds (the default
                 // everywhere)
  kEngine,       // round once, at the end, as fused engine kernels do
};

struct RmsNormParams {
  const void* x = nullptr;
  const void* weight = nullptr;  // [cols]; f32 if weight_kind == kScale
  const void* gate = nullptr;    // optional
  void* residual =
      nullptr;  // optional; read, then overwritten with R_x(x + residual)
  void* out = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t x_stride = 0;
  int64_t gate_stride = 0;
  int64_t residual_stride = 0;
  int64_t out_stride = 0;
  float eps = 1e-6f;
  DType x_dtype = DType::kBF16;
  DType weight_dtype = DType::kBF16;
  DType out_dtype = DType::kBF16;
  NormWeight weight_kind = NormWeight::kMultiply;
  RoundingOrder order = RoundingOrder::kHuggingFace;
};

// Checks pointers, sizes, strides and dtype combinations; the kernels assume
// valid params.
absl::Status ValidateRmsNormParams(const RmsNormParams& p);
// For valid params: the bytes the kernel reaches from pointer field `index`
// (x, weight, gate, residual, out: RmsNormKernel's pointer_offsets order).
size_t RmsNormArgBytes(const RmsNormParams& p, size_t index);

// A plain device copy (the residual stream's first write in a decode step).
struct CopyParams {
  const void* src = nullptr;
  void* dst = nullptr;
  int64_t bytes = 0;
};

absl::Status ValidateCopyParams(const CopyParams& p);
// `bytes` from either pointer.
size_t CopyArgBytes(const CopyParams& p, size_t index);

}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_RMS_NORM_PARAMS_H_
