#ifndef NORMGRAPH_LAYERS_NORM_MODULE_H_
#define NORMGRAPH_LAYERS_NORM_MODULE_H_

// NormModule: what every norm module shares: one `weight` parameter of
// [hidden], options, and the launch of the row-norm kernel. The concrete
// modules (rms_norm.h, zero_centered_rms_norm.h, gated_rms_norm.h) choose what
// the kernel multiplies by and which forms they offer.

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "core/stream.h"
#include "layers/module.h"
#include "layers/norm_launch.h"

namespace normgraph {

class NormModule : public Module {
 public:
  int64_t hidden() const { return hidden_; }
  const NormOptions& options() const { return options_; }
  Parameter& weight() { return *weight_; }
  const Parameter& weight() const { return *weight_; }

  // The dtype of the output for an input of dtype `x` (as Hugging Face returns
  // it).
  virtual DType OutputDType(DType x) const { return x; }

 protected:
  NormModule(std::string name, int64_t hidden, NormOptions options)
      : Module(std::move(name)), hidden_(hidden), options_(options) {}

  // Allocates the weight (filled with `initial_value`, as HF initialises it).
  absl::Status InitWeight(float initial_value);

  // Launches the kernel: out = norm(x) (with residual add and gate where
  // given).
  absl::Status Run(Stream& stream, const Tensor& x, const Tensor* residual,
                   const Tensor* gate, const Tensor& out) const;

  // What the kernel multiplies the normalised value by, and how.
  virtual const Tensor& KernelWeight() const { return weight_->tensor(); }
  virtual NormWeight KernelWeightKind() const { return NormWeight::kMultiply; }

 private:
  const int64_t hidden_;
  const NormOptions options_;
  Parameter* weight_ = nullptr;
};

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_NORM_MODULE_H_
