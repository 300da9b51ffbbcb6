#ifndef NORMGRAPH_LAYERS_QWEN3_5_NORM_STACK_H_
#define NORMGRAPH_LAYERS_QWEN3_5_NORM_STACK_H_

// The norms of Qwen3.5 (Qwen3_5ForCausalLM), under its checkpoint names:
//   model.layers.{i}.input_layernorm.weight            zero-centred [hidden]
//   model.layers.{i}.post_attention_layernorm.weight   zero-centred [hidden]
//   model.layers.{i}.self_attn.{q,k}_norm.weight       zero-centred [head_dim]
//   full attention model.layers.{i}.linear_attn.norm.weight           gated
//   [linear_value_head_dim]  linear attention model.norm.weight zero-centred
//   [hidden]
// Forward, per layer i (residual stream r, identity mixers; see norm_stack.h):
//   i == 0: h = input_layernorm(r)       else: r += h; h = input_layernorm(r)
//   (fused add) full:   q_normed_i = q_norm(q); k_normed_i = k_norm(k)     (per
//   head) linear: linear_out_i = linear_attn.norm(linear_core, linear_gate)
//   (per value head) r += h; h = post_attention_layernorm(r) (fused add)
// then r += h; out = norm(r). r starts as a copy of hidden_states.

#include <memory>
#include <vector>

#include "layers/gated_rms_norm.h"
#include "layers/norm_stack.h"

namespace normgraph {

enum class Qwen35LayerType { kLinearAttention, kFullAttention };

// Defaults are transformers 5.17's Qwen3_5TextConfig()
// (testdata/hf_golden/hf_configs.json).
struct Qwen35NormStackConfig {
  int64_t num_hidden_layers = 32;
  int64_t hidden_size = 4096;
  int64_t num_attention_heads = 16;
  int64_t num_key_value_heads = 4;
  int64_t head_dim = 256;
  int64_t linear_num_value_heads = 32;
  int64_t linear_value_head_dim = 128;
  float rms_norm_eps = 1e-6f;
  // Empty: HF's default pattern, three linear-attention layers then one
  // full-attention layer.
  std::vector<Qwen35LayerType> layer_types;
  DType dtype = DType::kBF16;  // activations and norm weights
  RoundingOrder order = RoundingOrder::kHuggingFace;
  Allocator* allocator = nullptr;
  ZeroCenteredFactory
      zero_centered_factory;  // null: ZeroCenteredRmsNorm::Create
};

class Qwen35NormStack : public NormStack {
 public:
  static absl::StatusOr<std::unique_ptr<Qwen35NormStack>> Create(
      Qwen35NormStackConfig config);

  std::vector<StepTensorSpec> StepSpecs(int64_t batch) const override;
  absl::Status Forward(Stream& stream, const StepBuffers& step) const override;
  DType activation_dtype() const override { return config_.dtype; }
  int64_t LaunchesPerStep() const override;
  const Qwen35NormStackConfig& config() const { return config_; }

 private:
  struct Layer {
    Qwen35LayerType type;
    ZeroCenteredRmsNorm* input_layernorm;
    ZeroCenteredRmsNorm* post_attention_layernorm;
    ZeroCenteredRmsNorm* q_norm = nullptr;
    ZeroCenteredRmsNorm* k_norm = nullptr;
    GatedRmsNorm* linear_norm = nullptr;
  };

  explicit Qwen35NormStack(Qwen35NormStackConfig config)
      : NormStack("model"), config_(std::move(config)) {}
  absl::Status Build();

  Qwen35NormStackConfig config_;
  std::vector<Layer> layers_;
  ZeroCenteredRmsNorm* norm_ = nullptr;
};

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_QWEN3_5_NORM_STACK_H_
