#ifndef NORMGRAPH_LAYERS_QWEN3_NORM_STACK_H_
#define NORMGRAPH_LAYERS_QWEN3_NORM_STACK_H_

// The norms of Qwen3 (Qwen3ForCausalLM), which are Llama's plus per-head q/k
// norms, all plain RMSNorm (Qwen3RMSNorm = LlamaRMSNorm, `w * R(x r)`), under
// their checkpoint names:
//   model.layers.{i}.input_layernorm.weight            [hidden]
//   model.layers.{i}.post_attention_layernorm.weight   [hidden]
//   model.layers.{i}.self_attn.q_norm.weight           [head_dim]
//   model.layers.{i}.self_attn.k_norm.weight           [head_dim]
//   model.norm.weight                                  [hidden]
// Forward, per layer i (residual stream r, identity mixers; see norm_stack.h),
// in Qwen3DecoderLayer's order with the residual adds fused into the norms:
//   i == 0: h = input_layernorm(r)
//   else:   r += h; h = input_layernorm(r)                       (fused add)
//   q_normed_i = q_norm(q); k_normed_i = k_norm(k)                (per head)
//   r += h; h = post_attention_layernorm(r)                       (fused add)
// then r += h; out = norm(r). r starts as a copy of hidden_states.
// Without the q/k norms (qk_norm = false) this is Llama's norm stack.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "layers/norm_stack.h"
#include "layers/rms_norm.h"

namespace normgraph {

// Builds the RMSNorms of a stack. Tests and the fuzzers' self-tests
// substitute faulty modules here.
using RmsNormFactory = std::function<absl::StatusOr<std::unique_ptr<RmsNorm>>(
    std::string name, int64_t hidden, const NormOptions& options)>;

// RmsNorm::Create, the factory a stack uses unless its config names another.
RmsNormFactory DefaultRmsNormFactory();

// Defaults: transformers 5.17's Qwen3Config() defaults, from that release's
// documentation (the sizes of Qwen/Qwen3-8B): hidden 4096, 36 layers, 32
// attention heads, 8 key/value heads, head_dim 128, rms_norm_eps 1e-6. Not
// cross-checked against an installed 5.17 here (testdata/hf_golden/
// hf_configs.json has no Qwen3Config entry); the 4.51-4.56 documentation lists
// 32 layers and 32 key/value heads instead. The norm shapes depend only on
// hidden_size and head_dim, which all of them share.
struct Qwen3NormStackConfig {
  int64_t num_hidden_layers = 36;
  int64_t hidden_size = 4096;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 8;
  int64_t head_dim = 128;
  float rms_norm_eps = 1e-6f;
  // Qwen3's per-head q/k norms; false gives Llama's stack (no q/k outputs).
  bool qk_norm = true;
  DType dtype = DType::kBF16;  // activations and norm weights
  RoundingOrder order = RoundingOrder::kHuggingFace;
  Allocator* allocator = nullptr;
  RmsNormFactory rms_norm_factory;  // null: RmsNorm::Create
};

class Qwen3NormStack : public NormStack {
 public:
  static absl::StatusOr<std::unique_ptr<Qwen3NormStack>> Create(
      Qwen3NormStackConfig config);

  std::vector<StepTensorSpec> StepSpecs(int64_t batch) const override;
  absl::Status Forward(Stream& stream, const StepBuffers& step) const override;
  DType activation_dtype() const override { return config_.dtype; }
  int64_t LaunchesPerStep() const override;
  const Qwen3NormStackConfig& config() const { return config_; }

 private:
  struct Layer {
    RmsNorm* input_layernorm;
    RmsNorm* post_attention_layernorm;
    RmsNorm* q_norm = nullptr;
    RmsNorm* k_norm = nullptr;
  };

  explicit Qwen3NormStack(Qwen3NormStackConfig config)
      : NormStack("model"), config_(std::move(config)) {}
  absl::Status Build();

  Qwen3NormStackConfig config_;
  std::vector<Layer> layers_;
  RmsNorm* norm_ = nullptr;
  // The step tensor names of each layer's q/k outputs, built once.
  std::vector<std::string> q_out_names_, k_out_names_;
};

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_QWEN3_NORM_STACK_H_
