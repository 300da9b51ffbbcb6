#include "layers/legacy_zero_centered_rms_norm.h"

namespace normgraph {

absl::StatusOr<std::unique_ptr<ZeroCenteredRmsNorm>>
LegacyZeroCenteredRmsNorm::Create(std::string name, int64_t hidden,
                                  const NormOptions& options) {
  std::unique_ptr<LegacyZeroCenteredRmsNorm> m(
      new LegacyZeroCenteredRmsNorm(std::move(name), hidden, options));
  absl::Status ok = m->Init();
  if (!ok.ok()) return ok;
  m->constructed_ = true;
  return std::unique_ptr<ZeroCenteredRmsNorm>(std::move(m));
}

absl::Status LegacyZeroCenteredRmsNorm::RefreshGemmaWeight() {
  if (!constructed_)
    return ZeroCenteredRmsNorm::RefreshGemmaWeight();  // __init__ allocates
                                                       // once
  // The bug: `self.gemma_weight = param.data + 1.0` allocates a new tensor on
  // every load.
  absl::StatusOr<Tensor> fresh =
      Tensor::Empty(AllocatorOf(options()), {hidden()}, DType::kF32);
  if (!fresh.ok()) return fresh.status();
  absl::Status ok = ComputeOnePlusWeight(*fresh);
  if (!ok.ok()) return ok;
  retired_.push_back(gemma_weight().tensor());
  gemma_weight().Rebind(*std::move(fresh));
  gemma_weight().MarkRefreshed();
  return absl::OkStatus();
}

ZeroCenteredFactory LegacyZeroCenteredFactory() {
  return [](std::string name, int64_t hidden, const NormOptions& options) {
    return LegacyZeroCenteredRmsNorm::Create(std::move(name), hidden, options);
  };
}

}  // namespace normgraph
