#ifndef NORMGRAPH_LAYERS_GATED_RMS_NORM_H_
#define NORMGRAPH_LAYERS_GATED_RMS_NORM_H_

// GatedRmsNorm: Qwen3_5RMSNormGated / Qwen3NextRMSNormGated, the norm of
// Qwen3.5's linear-attention output, `R(R(w * R(x r)) * silu(gate))` (weight
// init: ones). Applied per value head: x and gate are [tokens, value_heads,
// value_head_dim].

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "layers/norm_module.h"

namespace normgraph {

class GatedRmsNorm : public NormModule {
 public:
  static absl::StatusOr<std::unique_ptr<GatedRmsNorm>> Create(
      std::string name, int64_t hidden, const NormOptions& options = {});

  absl::Status Forward(Stream& stream, const Tensor& x, const Tensor& gate,
                       const Tensor& out) const {
    return Run(stream, x, nullptr, &gate, out);
  }

 private:
  using NormModule::NormModule;
};

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_GATED_RMS_NORM_H_
