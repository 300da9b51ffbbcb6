#ifndef NORMGRAPH_LAYERS_GEMMA3_NORM_STACK_H_
#define NORMGRAPH_LAYERS_GEMMA3_NORM_STACK_H_

// The norms of Gemma3 (Gemma3ForCausalLM), all zero-centred, under its
// checkpoint names:
//   model.layers.{i}.input_layernorm.weight, .post_attention_layernorm.weight,
//   .pre_feedforward_layernorm.weight, .post_feedforward_layernorm.weight
//   [hidden] model.layers.{i}.self_attn.{q,k}_norm.weight [head_dim]
//   model.norm.weight [hidden]
// Forward, per layer i (residual stream r, identity mixers; see norm_stack.h),
// as Gemma3's decoder layer orders them:
//   i == 0: a = input_layernorm(r)        else: r += b; a = input_layernorm(r)
//   (fused add) q_normed_i = q_norm(q); k_normed_i = k_norm(k) (per head) b =
//   post_attention_layernorm(a) r += b; a = pre_feedforward_layernorm(r) (fused
//   add) b = post_feedforward_layernorm(a)
// then r += b; out = norm(r). r starts as a copy of hidden_states.

#include <memory>
#include <vector>

#include "layers/norm_stack.h"

namespace normgraph {

// Defaults are transformers 5.17's Gemma3TextConfig()
// (testdata/hf_golden/hf_configs.json).
struct Gemma3NormStackConfig {
  int64_t num_hidden_layers = 26;
  int64_t hidden_size = 2304;
  int64_t num_attention_heads = 8;
  int64_t num_key_value_heads = 4;
  int64_t head_dim = 256;
  float rms_norm_eps = 1e-6f;
  DType dtype = DType::kBF16;
  RoundingOrder order = RoundingOrder::kHuggingFace;
  Allocator* allocator = nullptr;
  ZeroCenteredFactory
      zero_centered_factory;  // null: ZeroCenteredRmsNorm::Create
};

class Gemma3NormStack : public NormStack {
 public:
  static absl::StatusOr<std::unique_ptr<Gemma3NormStack>> Create(
      Gemma3NormStackConfig config);

  std::vector<StepTensorSpec> StepSpecs(int64_t batch) const override;
  absl::Status Forward(Stream& stream, const StepBuffers& step) const override;
  DType activation_dtype() const override { return config_.dtype; }
  int64_t LaunchesPerStep() const override {
    return 2 + 6 * static_cast<int64_t>(layers_.size());
  }
  const Gemma3NormStackConfig& config() const { return config_; }

 private:
  struct Layer {
    ZeroCenteredRmsNorm* input_layernorm;
    ZeroCenteredRmsNorm* post_attention_layernorm;
    ZeroCenteredRmsNorm* pre_feedforward_layernorm;
    ZeroCenteredRmsNorm* post_feedforward_layernorm;
    ZeroCenteredRmsNorm* q_norm;
    ZeroCenteredRmsNorm* k_norm;
  };

  explicit Gemma3NormStack(Gemma3NormStackConfig config)
      : NormStack("model"), config_(std::move(config)) {}
  absl::Status Build();

  Gemma3NormStackConfig config_;
  std::vector<Layer> layers_;
  ZeroCenteredRmsNorm* norm_ = nullptr;
};

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_GEMMA3_NORM_STACK_H_
