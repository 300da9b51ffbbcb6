#ifndef NORMGRAPH_LAYERS_LEGACY_ZERO_CENTERED_RMS_NORM_H_
#define NORMGRAPH_LAYERS_LEGACY_ZERO_CENTERED_RMS_NORM_H_

// TEST ONLY. The pre-fix SGLang GemmaRMSNorm, reproduced exactly: its weight
// loader writes the weight in place but then rebinds the derived buffer to a
// new allocation,
//     self.gemma_weight = param.data + 1.0
// while the old storage stays alive (a captured graph keeps reading it). This
// is the bug the rest of normgraph must catch; it is testonly and not part of
// the public API.

#include <memory>
#include <string>
#include <vector>

#include "layers/norm_stack.h"
#include "layers/zero_centered_rms_norm.h"

namespace normgraph {

class LegacyZeroCenteredRmsNorm : public ZeroCenteredRmsNorm {
 public:
  static absl::StatusOr<std::unique_ptr<ZeroCenteredRmsNorm>> Create(
      std::string name, int64_t hidden, const NormOptions& options = {});

 protected:
  absl::Status RefreshGemmaWeight() override;

 private:
  using ZeroCenteredRmsNorm::ZeroCenteredRmsNorm;
  bool constructed_ = false;
  std::vector<Tensor>
      retired_;  // old gemma_weight storages, kept alive like the Python object
};

// A factory for NormStack configs that builds every zero-centred norm as the
// legacy module.
ZeroCenteredFactory LegacyZeroCenteredFactory();

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_LEGACY_ZERO_CENTERED_RMS_NORM_H_
