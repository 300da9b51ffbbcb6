#include "layers/gemma3_norm_stack.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace normgraph {

absl::StatusOr<std::unique_ptr<Gemma3NormStack>> Gemma3NormStack::Create(
    Gemma3NormStackConfig config) {
  if (config.num_hidden_layers < 1 || config.hidden_size < 1 ||
      config.num_attention_heads < 1 || config.num_key_value_heads < 1 ||
      config.head_dim < 1) {
    return absl::InvalidArgumentError("gemma3 config: every size must be >= 1");
  }
  if (!config.zero_centered_factory) {
    config.zero_centered_factory = DefaultZeroCenteredFactory();
  }
  std::unique_ptr<Gemma3NormStack> stack(
      new Gemma3NormStack(std::move(config)));
  NG_RETURN_IF_ERROR(stack->Build());
  return stack;
}

absl::Status Gemma3NormStack::Build() {
  const NormOptions options = StackNormOptions(
      config_.rms_norm_eps, config_.dtype, config_.order, config_.allocator);
  const ZeroCenteredFactory& zc = config_.zero_centered_factory;
  const int64_t h = config_.hidden_size;

  ModuleList* layers = AddChild(std::make_unique<ModuleList>("layers"));
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    ModuleList* decoder =
        layers->Append(std::make_unique<ModuleList>(absl::StrCat(i)));
    Layer layer;
    NG_ASSIGN_OR_RETURN(auto in, zc("input_layernorm", h, options));
    layer.input_layernorm = decoder->Append(std::move(in));
    NG_ASSIGN_OR_RETURN(auto post_attn,
                        zc("post_attention_layernorm", h, options));
    layer.post_attention_layernorm = decoder->Append(std::move(post_attn));
    NG_ASSIGN_OR_RETURN(auto pre_ff,
                        zc("pre_feedforward_layernorm", h, options));
    layer.pre_feedforward_layernorm = decoder->Append(std::move(pre_ff));
    NG_ASSIGN_OR_RETURN(auto post_ff,
                        zc("post_feedforward_layernorm", h, options));
    layer.post_feedforward_layernorm = decoder->Append(std::move(post_ff));
    ModuleList* attn =
        decoder->Append(std::make_unique<ModuleList>("self_attn"));
    NG_ASSIGN_OR_RETURN(auto q, zc("q_norm", config_.head_dim, options));
    layer.q_norm = attn->Append(std::move(q));
    NG_ASSIGN_OR_RETURN(auto k, zc("k_norm", config_.head_dim, options));
    layer.k_norm = attn->Append(std::move(k));
    layers_.push_back(layer);
  }
  NG_ASSIGN_OR_RETURN(auto norm, zc("norm", h, options));
  norm_ = AddChild(std::move(norm));
  return absl::OkStatus();
}

std::vector<StepTensorSpec> Gemma3NormStack::StepSpecs(int64_t batch) const {
  const Gemma3NormStackConfig& c = config_;
  std::vector<StepTensorSpec> specs =
      CommonStepSpecs(batch, c.hidden_size, c.num_attention_heads,
                      c.num_key_value_heads, c.head_dim, c.dtype);
  for (size_t i = 0; i < layers_.size(); ++i) {
    AppendQkOutputSpecs(specs, i, batch, c.num_attention_heads,
                        c.num_key_value_heads, c.head_dim, c.dtype);
  }
  return specs;
}

absl::Status Gemma3NormStack::Forward(Stream& stream,
                                      const StepBuffers& step) const {
  NG_ASSIGN_OR_RETURN(Tensor hidden_states, step.Get("hidden_states"));
  NG_ASSIGN_OR_RETURN(Tensor q, step.Get("q"));
  NG_ASSIGN_OR_RETURN(Tensor k, step.Get("k"));
  NG_ASSIGN_OR_RETURN(Tensor out, step.Get("out"));
  NG_ASSIGN_OR_RETURN(Tensor residual, step.Get("residual"));
  NG_ASSIGN_OR_RETURN(Tensor a, step.Get("hidden_a"));
  NG_ASSIGN_OR_RETURN(Tensor b, step.Get("hidden_b"));

  NG_RETURN_IF_ERROR(LaunchCopy(stream, hidden_states, residual));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    if (i == 0) {
      NG_RETURN_IF_ERROR(layer.input_layernorm->Forward(stream, residual, a));
    } else {
      NG_RETURN_IF_ERROR(
          layer.input_layernorm->ForwardAdd(stream, b, residual, a));
    }
    NG_ASSIGN_OR_RETURN(Tensor q_out,
                        step.Get(absl::StrCat("layers.", i, ".q_normed")));
    NG_ASSIGN_OR_RETURN(Tensor k_out,
                        step.Get(absl::StrCat("layers.", i, ".k_normed")));
    NG_RETURN_IF_ERROR(layer.q_norm->Forward(stream, q, q_out));
    NG_RETURN_IF_ERROR(layer.k_norm->Forward(stream, k, k_out));
    NG_RETURN_IF_ERROR(layer.post_attention_layernorm->Forward(stream, a, b));
    NG_RETURN_IF_ERROR(
        layer.pre_feedforward_layernorm->ForwardAdd(stream, b, residual, a));
    NG_RETURN_IF_ERROR(layer.post_feedforward_layernorm->Forward(stream, a, b));
  }
  return norm_->ForwardAdd(stream, b, residual, out);
}

}  // namespace normgraph
