#ifndef NORMGRAPH_LAYERS_NORM_LAUNCH_H_
#define NORMGRAPH_LAYERS_NORM_LAUNCH_H_

// The one place norm modules turn tensors into an RmsNormParams launch: shape
// and dtype checks with errors that name the module and the tensor, then
// Stream::Launch with every pointer bound to its tensor.

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/rms_norm_params.h"

namespace normgraph {

// Options shared by every norm module.
struct NormOptions {
  float eps = 1e-6f;
  DType weight_dtype = DType::kBF16;
  RoundingOrder order = RoundingOrder::kHuggingFace;
  Allocator* allocator = nullptr;  // null: the CPU allocator
};

struct NormCall {
  absl::string_view
      module;  // full dotted name, for errors (must outlive the call)
  const Tensor* x = nullptr;
  const Tensor* out = nullptr;
  const Tensor* residual = nullptr;  // optional; updated in place
  const Tensor* gate = nullptr;      // optional
  const Tensor* weight = nullptr;    // [cols]: w, or the f32 scale 1 + w
  NormWeight weight_kind = NormWeight::kMultiply;
  float eps = 1e-6f;
  RoundingOrder order = RoundingOrder::kHuggingFace;
};

// Normalises the last dimension of `x` (any leading dimensions that collapse
// into evenly strided rows: [tokens, hidden], [tokens, heads, head_dim], ...).
// out, residual and gate must have x's shape; residual and gate x's dtype.
absl::Status LaunchNorm(Stream& stream, const NormCall& call);

// The allocator `options` names (the CPU allocator by default).
Allocator& AllocatorOf(const NormOptions& options);

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_NORM_LAUNCH_H_
