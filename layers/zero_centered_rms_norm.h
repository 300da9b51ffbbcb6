#ifndef NORMGRAPH_LAYERS_ZERO_CENTERED_RMS_NORM_H_
#define NORMGRAPH_LAYERS_ZERO_CENTERED_RMS_NORM_H_

// ZeroCenteredRmsNorm: GemmaRMSNorm, Gemma3RMSNorm, Qwen3NextRMSNorm,
// Qwen3_5RMSNorm: `R((x r) * (1 + w))` (weight init: zeros), and its fused
// residual-add form. Also the q/k norm of Gemma3 and Qwen3.5.
//
// The module keeps the loaded `weight` and a derived float32 buffer
// `gemma_weight = 1 + w` (in f32: rounding 1 + w to bf16 would differ from HF's
// `1.0 + weight.float()`). Both are allocated once, at construction; loading a
// weight rewrites both in place, so a captured graph stays valid. This is the
// fix for SGLang's GemmaRMSNorm, whose loader did `self.gemma_weight =
// param.data + 1.0`.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "layers/norm_module.h"

namespace normgraph {

class ZeroCenteredRmsNorm : public NormModule {
 public:
  static absl::StatusOr<std::unique_ptr<ZeroCenteredRmsNorm>> Create(
      std::string name, int64_t hidden, const NormOptions& options = {});

  absl::Status Forward(Stream& stream, const Tensor& x,
                       const Tensor& out) const {
    return Run(stream, x, nullptr, nullptr, out);
  }
  absl::Status ForwardAdd(Stream& stream, const Tensor& x,
                          const Tensor& residual, const Tensor& out) const {
    return Run(stream, x, &residual, nullptr, out);
  }

  // The derived f32 `1 + weight` buffer the kernel reads.
  TensorSlot& gemma_weight() { return *gemma_weight_; }
  const TensorSlot& gemma_weight() const { return *gemma_weight_; }

 protected:
  using NormModule::NormModule;
  absl::Status Init();

  // Recomputes gemma_weight = 1 + float(weight) in place and marks it
  // refreshed. The test-only legacy module overrides this to reproduce the
  // pre-fix bug.
  virtual absl::Status RefreshGemmaWeight();

  const Tensor& KernelWeight() const override {
    return gemma_weight_->tensor();
  }
  NormWeight KernelWeightKind() const override { return NormWeight::kScale; }

  // Writes 1 + float(weight) into `dst` (an f32 [hidden] tensor).
  absl::Status ComputeOnePlusWeight(const Tensor& dst) const;

 private:
  TensorSlot* gemma_weight_ = nullptr;
};

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_ZERO_CENTERED_RMS_NORM_H_
