#include "layers/norm_stack.h"

#include "absl/strings/str_cat.h"
#include "kernels/kernels.h"

namespace normgraph {

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
