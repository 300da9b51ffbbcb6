#include "layers/norm_stack.h"

#include "absl/strings/str_cat.h"
#include "kernels/kernels.h"

namespace normgraph {

ZeroCenteredFactory DefaultZeroCenteredFactory() {
  return [](std::string name, int64_t hidden, const NormOptions& options) {
    return ZeroCenteredRmsNorm::Create(std::move(name), hidden, options);
  };
}

NormOptions StackNormOptions(float eps, DType dtype, RoundingOrder order,
                             Allocator* allocator) {
  NormOptions options;
  options.eps = eps;
  options.weight_dtype = dtype;
  options.order = order;
  options.allocator = allocator;
  return options;
}

std::vector<StepTensorSpec> CommonStepSpecs(int64_t batch, int64_t hidden,
                                            int64_t heads, int64_t kv_heads,
                                            int64_t head_dim, DType dtype) {
  return {
      {"hidden_states", {batch, hidden}, dtype, StepRole::kInput},
      {"q", {batch, heads, head_dim}, dtype, StepRole::kInput},
      {"k", {batch, kv_heads, head_dim}, dtype, StepRole::kInput},
      {"out", {batch, hidden}, dtype, StepRole::kOutput},
      {"residual", {batch, hidden}, dtype, StepRole::kOutput},
      {"hidden_a", {batch, hidden}, dtype, StepRole::kWorkspace},
      {"hidden_b", {batch, hidden}, dtype, StepRole::kWorkspace},
  };
}

void AppendQkOutputSpecs(std::vector<StepTensorSpec>& specs, size_t layer,
                         int64_t batch, int64_t heads, int64_t kv_heads,
                         int64_t head_dim, DType dtype) {
  specs.push_back({absl::StrCat("layers.", layer, ".q_normed"),
                   {batch, heads, head_dim},
                   dtype,
                   StepRole::kOutput});
  specs.push_back({absl::StrCat("layers.", layer, ".k_normed"),
                   {batch, kv_heads, head_dim},
                   dtype,
                   StepRole::kOutput});
}

absl::Status LaunchCopy(Stream& stream, const Tensor& src, const Tensor& dst) {
  if (src.shape() != dst.shape() || src.dtype() != dst.dtype() ||
      !src.is_contiguous() || !dst.is_contiguous()) {
    return absl::InvalidArgumentError(
        absl::StrCat("copy: ", src.DebugString(), " -> ", dst.DebugString()));
  }
  CopyParams p{src.data(), dst.data(),
               static_cast<int64_t>(src.numel() * DTypeSize(src.dtype()))};
  return stream.Launch(
      CopyKernel(), p,
      {{&p.src, &src, Access::kRead}, {&p.dst, &dst, Access::kWrite}});
}

}  // namespace normgraph
