#include "layers/qwen3_norm_stack.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace normgraph {

RmsNormFactory DefaultRmsNormFactory() {
  return [](std::string name, int64_t hidden, const NormOptions& options) {
    return RmsNorm::Create(std::move(name), hidden, options);
  };
}

absl::StatusOr<std::unique_ptr<Qwen3NormStack>> Qwen3NormStack::Create(
    Qwen3NormStackConfig config) {
  if (config.num_hidden_layers < 1 || config.hidden_size < 1 ||
      config.num_attention_heads < 1 || config.num_key_value_heads < 1 ||
      config.head_dim < 1) {
    return absl::InvalidArgumentError("qwen3 config: every size must be >= 1");
  }
  if (!config.rms_norm_factory)
    config.rms_norm_factory = DefaultRmsNormFactory();
  std::unique_ptr<Qwen3NormStack> stack(new Qwen3NormStack(std::move(config)));
  NG_RETURN_IF_ERROR(stack->Build());
  return stack;
}

absl::Status Qwen3NormStack::Build() {
  const NormOptions options = StackNormOptions(
      config_.rms_norm_eps, config_.dtype, config_.order, config_.allocator);
  const RmsNormFactory& rms = config_.rms_norm_factory;
  const int64_t h = config_.hidden_size;

  ModuleList* layers = AddChild(std::make_unique<ModuleList>("layers"));
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    ModuleList* decoder =
        layers->Append(std::make_unique<ModuleList>(absl::StrCat(i)));
    Layer layer;
    NG_ASSIGN_OR_RETURN(auto in, rms("input_layernorm", h, options));
    layer.input_layernorm = decoder->Append(std::move(in));
    NG_ASSIGN_OR_RETURN(auto post, rms("post_attention_layernorm", h, options));
    layer.post_attention_layernorm = decoder->Append(std::move(post));
    if (config_.qk_norm) {
      ModuleList* attn =
          decoder->Append(std::make_unique<ModuleList>("self_attn"));
      NG_ASSIGN_OR_RETURN(auto q, rms("q_norm", config_.head_dim, options));
      layer.q_norm = attn->Append(std::move(q));
      NG_ASSIGN_OR_RETURN(auto k, rms("k_norm", config_.head_dim, options));
      layer.k_norm = attn->Append(std::move(k));
      q_out_names_.push_back(absl::StrCat("layers.", i, ".q_normed"));
      k_out_names_.push_back(absl::StrCat("layers.", i, ".k_normed"));
    }
    layers_.push_back(layer);
  }
  NG_ASSIGN_OR_RETURN(auto norm, rms("norm", h, options));
  norm_ = AddChild(std::move(norm));
  return absl::OkStatus();
}

std::vector<StepTensorSpec> Qwen3NormStack::StepSpecs(int64_t batch) const {
  const Qwen3NormStackConfig& c = config_;
  std::vector<StepTensorSpec> specs =
      CommonStepSpecs(batch, c.hidden_size, c.num_attention_heads,
                      c.num_key_value_heads, c.head_dim, c.dtype);
  if (c.qk_norm) {
    for (size_t i = 0; i < layers_.size(); ++i) {
      AppendQkOutputSpecs(specs, i, batch, c.num_attention_heads,
                          c.num_key_value_heads, c.head_dim, c.dtype);
    }
  }
  return specs;
}

int64_t Qwen3NormStack::LaunchesPerStep() const {
  // The residual copy and the final norm, then two norms per layer, plus q/k.
  return 2 + static_cast<int64_t>(layers_.size()) * (config_.qk_norm ? 4 : 2);
}

absl::Status Qwen3NormStack::Forward(Stream& stream,
                                     const StepBuffers& step) const {
  NG_ASSIGN_OR_RETURN(Tensor hidden_states, step.Get("hidden_states"));
  NG_ASSIGN_OR_RETURN(Tensor out, step.Get("out"));
  NG_ASSIGN_OR_RETURN(Tensor residual, step.Get("residual"));
  NG_ASSIGN_OR_RETURN(Tensor h, step.Get("hidden_a"));
  NG_ASSIGN_OR_RETURN(Tensor spare, step.Get("hidden_b"));
  Tensor q, k;
  if (config_.qk_norm) {
    NG_ASSIGN_OR_RETURN(q, step.Get("q"));
    NG_ASSIGN_OR_RETURN(k, step.Get("k"));
  }

  NG_RETURN_IF_ERROR(LaunchCopy(stream, hidden_states, residual));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    if (i == 0) {
      NG_RETURN_IF_ERROR(layer.input_layernorm->Forward(stream, residual, h));
    } else {
      NG_RETURN_IF_ERROR(
          layer.input_layernorm->ForwardAdd(stream, h, residual, spare));
      std::swap(h, spare);
    }
    if (config_.qk_norm) {
      NG_ASSIGN_OR_RETURN(Tensor q_out, step.Get(q_out_names_[i]));
      NG_ASSIGN_OR_RETURN(Tensor k_out, step.Get(k_out_names_[i]));
      NG_RETURN_IF_ERROR(layer.q_norm->Forward(stream, q, q_out));
      NG_RETURN_IF_ERROR(layer.k_norm->Forward(stream, k, k_out));
    }
    NG_RETURN_IF_ERROR(
        layer.post_attention_layernorm->ForwardAdd(stream, h, residual, spare));
    std::swap(h, spare);
  }
  return norm_->ForwardAdd(stream, h, residual, out);
}

}  // namespace normgraph
