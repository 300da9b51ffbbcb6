#include "layers/qwen3_5_norm_stack.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace normgraph {

absl::StatusOr<std::unique_ptr<Qwen35NormStack>> Qwen35NormStack::Create(
    Qwen35NormStackConfig config) {
  if (config.layer_types.empty()) {
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
      config.layer_types.push_back((i + 1) % 4 == 0
                                       ? Qwen35LayerType::kFullAttention
                                       : Qwen35LayerType::kLinearAttention);
    }
  }
  if (static_cast<int64_t>(config.layer_types.size()) !=
      config.num_hidden_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("qwen3.5 config: ", config.layer_types.size(),
                     " layer types for ", config.num_hidden_layers, " layers"));
  }
  if (config.num_hidden_layers < 1 || config.hidden_size < 1 ||
      config.num_attention_heads < 1 || config.num_key_value_heads < 1 ||
      config.head_dim < 1 || config.linear_num_value_heads < 1 ||
      config.linear_value_head_dim < 1) {
    return absl::InvalidArgumentError(
        "qwen3.5 config: every size must be >= 1");
  }
  if (!config.zero_centered_factory) {
    config.zero_centered_factory = DefaultZeroCenteredFactory();
  }
  std::unique_ptr<Qwen35NormStack> stack(
      new Qwen35NormStack(std::move(config)));
  NG_RETURN_IF_ERROR(stack->Build());
  return stack;
}

absl::Status Qwen35NormStack::Build() {
  const NormOptions options = StackNormOptions(
      config_.rms_norm_eps, config_.dtype, config_.order, config_.allocator);
  const ZeroCenteredFactory& zc = config_.zero_centered_factory;

  ModuleList* layers = AddChild(std::make_unique<ModuleList>("layers"));
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    ModuleList* decoder =
        layers->Append(std::make_unique<ModuleList>(absl::StrCat(i)));
    Layer layer;
    layer.type = config_.layer_types[i];
    NG_ASSIGN_OR_RETURN(auto in,
                        zc("input_layernorm", config_.hidden_size, options));
    layer.input_layernorm = decoder->Append(std::move(in));
    NG_ASSIGN_OR_RETURN(auto post, zc("post_attention_layernorm",
                                      config_.hidden_size, options));
    layer.post_attention_layernorm = decoder->Append(std::move(post));
    if (layer.type == Qwen35LayerType::kFullAttention) {
      ModuleList* attn =
          decoder->Append(std::make_unique<ModuleList>("self_attn"));
      NG_ASSIGN_OR_RETURN(auto q, zc("q_norm", config_.head_dim, options));
      layer.q_norm = attn->Append(std::move(q));
      NG_ASSIGN_OR_RETURN(auto k, zc("k_norm", config_.head_dim, options));
      layer.k_norm = attn->Append(std::move(k));
    } else {
      ModuleList* attn =
          decoder->Append(std::make_unique<ModuleList>("linear_attn"));
      NG_ASSIGN_OR_RETURN(
          auto g,
          GatedRmsNorm::Create("norm", config_.linear_value_head_dim, options));
      layer.linear_norm = attn->Append(std::move(g));
    }
    layers_.push_back(layer);
  }
  NG_ASSIGN_OR_RETURN(auto norm, zc("norm", config_.hidden_size, options));
  norm_ = AddChild(std::move(norm));
  return absl::OkStatus();
}

std::vector<StepTensorSpec> Qwen35NormStack::StepSpecs(int64_t batch) const {
  const Qwen35NormStackConfig& c = config_;
  std::vector<StepTensorSpec> specs =
      CommonStepSpecs(batch, c.hidden_size, c.num_attention_heads,
                      c.num_key_value_heads, c.head_dim, c.dtype);
  const Shape linear = {batch, c.linear_num_value_heads,
                        c.linear_value_head_dim};
  specs.push_back({"linear_core", linear, c.dtype, StepRole::kInput});
  specs.push_back({"linear_gate", linear, c.dtype, StepRole::kInput});
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[i].type == Qwen35LayerType::kFullAttention) {
      AppendQkOutputSpecs(specs, i, batch, c.num_attention_heads,
                          c.num_key_value_heads, c.head_dim, c.dtype);
    } else {
      specs.push_back({absl::StrCat("layers.", i, ".linear_out"), linear,
                       c.dtype, StepRole::kOutput});
    }
  }
  return specs;
}

int64_t Qwen35NormStack::LaunchesPerStep() const {
  int64_t n = 2;  // the residual copy and the final norm
  for (const Layer& l : layers_)
    n += l.type == Qwen35LayerType::kFullAttention ? 4 : 3;
  return n;
}

absl::Status Qwen35NormStack::Forward(Stream& stream,
                                      const StepBuffers& step) const {
  NG_ASSIGN_OR_RETURN(Tensor hidden_states, step.Get("hidden_states"));
  NG_ASSIGN_OR_RETURN(Tensor q, step.Get("q"));
  NG_ASSIGN_OR_RETURN(Tensor k, step.Get("k"));
  NG_ASSIGN_OR_RETURN(Tensor linear_core, step.Get("linear_core"));
  NG_ASSIGN_OR_RETURN(Tensor linear_gate, step.Get("linear_gate"));
  NG_ASSIGN_OR_RETURN(Tensor out, step.Get("out"));
  NG_ASSIGN_OR_RETURN(Tensor residual, step.Get("residual"));
  NG_ASSIGN_OR_RETURN(Tensor h, step.Get("hidden_a"));
  NG_ASSIGN_OR_RETURN(Tensor spare, step.Get("hidden_b"));

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
    if (layer.type == Qwen35LayerType::kFullAttention) {
      NG_ASSIGN_OR_RETURN(Tensor q_out,
                          step.Get(absl::StrCat("layers.", i, ".q_normed")));
      NG_ASSIGN_OR_RETURN(Tensor k_out,
                          step.Get(absl::StrCat("layers.", i, ".k_normed")));
      NG_RETURN_IF_ERROR(layer.q_norm->Forward(stream, q, q_out));
      NG_RETURN_IF_ERROR(layer.k_norm->Forward(stream, k, k_out));
    } else {
      NG_ASSIGN_OR_RETURN(Tensor lin_out,
                          step.Get(absl::StrCat("layers.", i, ".linear_out")));
      NG_RETURN_IF_ERROR(layer.linear_norm->Forward(stream, linear_core,
                                                    linear_gate, lin_out));
    }
    NG_RETURN_IF_ERROR(
        layer.post_attention_layernorm->ForwardAdd(stream, h, residual, spare));
    std::swap(h, spare);
  }
  return norm_->ForwardAdd(stream, h, residual, out);
}

}  // namespace normgraph
