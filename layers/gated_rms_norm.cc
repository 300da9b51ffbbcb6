#include "layers/gated_rms_norm.h"

namespace normgraph {

absl::StatusOr<std::unique_ptr<GatedRmsNorm>> GatedRmsNorm::Create(
    std::string name, int64_t hidden, const NormOptions& options) {
  std::unique_ptr<GatedRmsNorm> m(
      new GatedRmsNorm(std::move(name), hidden, options));
  absl::Status ok = m->InitWeight(1.0f);
  if (!ok.ok()) return ok;
  return m;
}

}  // namespace normgraph
