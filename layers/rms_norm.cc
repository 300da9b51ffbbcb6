#include "layers/rms_norm.h"

namespace normgraph {

absl::StatusOr<std::unique_ptr<RmsNorm>> RmsNorm::Create(
    std::string name, int64_t hidden, const NormOptions& options) {
  std::unique_ptr<RmsNorm> m(new RmsNorm(std::move(name), hidden, options));
  absl::Status ok = m->InitWeight(1.0f);
  if (!ok.ok()) return ok;
  return m;
}

DType RmsNorm::OutputDType(DType x) const {
  return options().order == RoundingOrder::kHuggingFace
             ? PromoteTypes(x, options().weight_dtype)
             : x;
}

}  // namespace normgraph
