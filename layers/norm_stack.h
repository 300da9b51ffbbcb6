#ifndef NORMGRAPH_LAYERS_NORM_STACK_H_
#define NORMGRAPH_LAYERS_NORM_STACK_H_

// NormStack: a model skeleton holding every norm of a decoder stack under its
// Hugging Face checkpoint names, whose Forward runs those norms in the order
// the real model does, with the residual stream threaded through: a faithful
// stand-in for the norm work of one decode step.
//
// The parts of the real model that are not norms (attention, linear attention,
// MLP) are replaced by the identity for the residual stream, and their norm
// inputs (q, k, the linear-attention core output and its gate) are step inputs
// shared by all layers. Every norm's output is a step output or feeds one, so a
// stale weight anywhere shows up in the outputs.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/step_buffers.h"
#include "core/stream.h"
#include "layers/module.h"
#include "layers/norm_launch.h"
#include "layers/zero_centered_rms_norm.h"

namespace normgraph {

// Builds the zero-centred norms of a stack. Tests substitute the legacy
// (pre-fix) module here.
using ZeroCenteredFactory =
    std::function<absl::StatusOr<std::unique_ptr<ZeroCenteredRmsNorm>>(
        std::string name, int64_t hidden, const NormOptions& options)>;

class NormStack : public Module {
 public:
  using Module::Module;

  // The step tensors for a batch of `batch` tokens (one per sequence in
  // decode).
  virtual std::vector<StepTensorSpec> StepSpecs(int64_t batch) const = 0;
  // One step: reads the step's inputs, writes its outputs (and workspace).
  virtual absl::Status Forward(Stream& stream,
                               const StepBuffers& step) const = 0;
  virtual DType activation_dtype() const = 0;
  // Number of kernel launches one Forward makes.
  virtual int64_t LaunchesPerStep() const = 0;
};

// ZeroCenteredRmsNorm::Create, the factory a stack uses unless its config names
// another.
ZeroCenteredFactory DefaultZeroCenteredFactory();

// The options every norm of a stack shares.
NormOptions StackNormOptions(float eps, DType dtype, RoundingOrder order,
                             Allocator* allocator);

// The step tensors every stack has: inputs hidden_states [batch, hidden],
// q [batch, heads, head_dim], k [batch, kv_heads, head_dim]; outputs out and
// residual [batch, hidden]; workspace hidden_a and hidden_b [batch, hidden].
std::vector<StepTensorSpec> CommonStepSpecs(int64_t batch, int64_t hidden,
                                            int64_t heads, int64_t kv_heads,
                                            int64_t head_dim, DType dtype);

// Appends the outputs layers.{layer}.q_normed and .k_normed.
void AppendQkOutputSpecs(std::vector<StepTensorSpec>& specs, size_t layer,
                         int64_t batch, int64_t heads, int64_t kv_heads,
                         int64_t head_dim, DType dtype);

// Copies `src` into `dst` (same shape, dtype, contiguous) through the stream.
absl::Status LaunchCopy(Stream& stream, const Tensor& src, const Tensor& dst);

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_NORM_STACK_H_
