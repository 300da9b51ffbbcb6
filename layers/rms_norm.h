#ifndef NORMGRAPH_LAYERS_RMS_NORM_H_
#define NORMGRAPH_LAYERS_RMS_NORM_H_

// RmsNorm: LlamaRMSNorm / Qwen3RMSNorm, `w * R(x r)` (weight init: ones), and
// its fused residual-add form. Also the q/k norm of Qwen3 (applied to [tokens,
// heads, head_dim]).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "layers/norm_module.h"

namespace normgraph {

class RmsNorm : public NormModule {
 public:
  static absl::StatusOr<std::unique_ptr<RmsNorm>> Create(
      std::string name, int64_t hidden, const NormOptions& options = {});

  // out = norm(x) over the last dimension.
  absl::Status Forward(Stream& stream, const Tensor& x,
                       const Tensor& out) const {
    return Run(stream, x, nullptr, nullptr, out);
  }
  // residual <- R(x + residual) in place, then out = norm(residual).
  absl::Status ForwardAdd(Stream& stream, const Tensor& x,
                          const Tensor& residual, const Tensor& out) const {
    return Run(stream, x, &residual, nullptr, out);
  }

  // HF returns `weight * x.to(input_dtype)`: the promoted dtype of weight and
  // input. The engine order writes the input dtype.
  DType OutputDType(DType x) const override;

 private:
  using NormModule::NormModule;
};

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_RMS_NORM_H_
