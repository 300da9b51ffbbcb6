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
