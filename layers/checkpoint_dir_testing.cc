#include "layers/checkpoint_dir_testing.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/storage.h"
#include "core/tensor_util.h"
#include "layers/safetensors/writer.h"
#include "nlohmann/json.hpp"

namespace normgraph::testing {
namespace {

using Json = nlohmann::ordered_json;

absl::Status MakeDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InternalError(
        absl::StrCat("mkdir ", dir, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> Filled(Shape shape, DType dtype, float value) {
  absl::StatusOr<Tensor> t = Tensor::Empty(CpuAllocator(), shape, dtype);
  if (!t.ok()) return t.status();
  absl::Status s = Fill(*t, value);
  if (!s.ok()) return s;
  return t;
}

std::string Rest(const std::string& name) {
  return absl::StartsWith(name, "model.") ? name.substr(6) : name;
}

}  // namespace

absl::Status WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) return absl::InternalError(absl::StrCat("short write to ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> WriteHfCheckpoint(
    const std::string& dir, const NamedTensors& weights,
    const HfLayout& layout) {
  absl::Status made = MakeDir(dir);
  if (!made.ok()) return made;
  // Every tensor, under its checkpoint name. Extras first, as in a real
  // checkpoint's alphabetical order the norms are interleaved with them.
  NamedTensors all;
  int64_t hidden = 1, layers = 0;
  for (const auto& [name, t] : weights) {
    if (name == "model.norm.weight") hidden = t.shape()[0];
    if (absl::StartsWith(name, "model.layers.")) {
      int64_t i = 0;
      if (absl::SimpleAtoi(name.substr(13, name.find('.', 13) - 13), &i)) {
        layers = std::max(layers, i + 1);
      }
    }
  }
  const DType dtype =
      weights.empty() ? DType::kBF16 : weights.front().second.dtype();
  auto add = [&](std::string name, Shape shape, float value) -> absl::Status {
    absl::StatusOr<Tensor> t = Filled(std::move(shape), dtype, value);
    if (!t.ok()) return t.status();
    all.emplace_back(std::move(name), *std::move(t));
    return absl::OkStatus();
  };
  if (layout.extras) {
    if (auto s = add(layout.prefix + "embed_tokens.weight", {16, hidden}, 0.5f);
        !s.ok())
      return s;
    for (int64_t i = 0; i < layers; ++i) {
      if (auto s = add(absl::StrCat(layout.prefix, "layers.", i,
                                    ".mlp.down_proj.weight"),
                       {4, hidden}, 0.25f);
          !s.ok())
        return s;
      if (auto s = add(
              absl::StrCat(layout.prefix, "layers.", i, ".mlp.up_proj.weight"),
              {hidden, 4}, 0.25f);
          !s.ok())
        return s;
    }
    if (auto s = add("lm_head.weight", {16, hidden}, 0.5f); !s.ok()) return s;
  }
  if (layout.vision) {
    if (auto s = add("model.visual.blocks.0.norm1.weight", {8}, 1.0f); !s.ok())
      return s;
    if (auto s = add("model.visual.blocks.0.attn.qkv.weight", {24, 8}, 0.1f);
        !s.ok())
      return s;
  }
  if (layout.mtp) {
    if (auto s = add("mtp.layers.0.input_layernorm.weight", {hidden}, 0.0f);
        !s.ok())
      return s;
    if (auto s = add("mtp.norm.weight", {hidden}, 0.0f); !s.ok()) return s;
  }
  for (const auto& [name, t] : weights) {
    all.emplace_back(layout.prefix + Rest(name), t);
  }
  std::vector<std::string> names;
  for (const auto& [name, t] : all) names.push_back(name);

  if (!layout.config_json.empty()) {
    absl::Status s =
        WriteFileBytes(absl::StrCat(dir, "/config.json"), layout.config_json);
    if (!s.ok()) return s;
  }
  if (layout.max_shard_bytes <= 0) {
    std::vector<safetensors::NamedView> views;
    for (const auto& [name, t] : all) views.push_back({name, ViewOf(t)});
    absl::Status s = safetensors::WriteFile(
        absl::StrCat(dir, "/", layout.file_name), views, {{"format", "pt"}});
    if (!s.ok()) return s;
    return names;
  }
  // Shards, filled greedily in order, as save_pretrained does.
  std::vector<std::vector<safetensors::NamedView>> shards(1);
  int64_t used = 0;
  for (const auto& [name, t] : all) {
    const int64_t bytes =
        static_cast<int64_t>(t.numel() * DTypeSize(t.dtype()));
    if (!shards.back().empty() && used + bytes > layout.max_shard_bytes) {
      shards.emplace_back();
      used = 0;
    }
    shards.back().push_back({name, ViewOf(t)});
    used += bytes;
  }
  Json index;
  int64_t total = 0;
  for (const auto& [name, t] : all) {
    total += static_cast<int64_t>(t.numel() * DTypeSize(t.dtype()));
  }
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = Json::object();
  for (size_t k = 0; k < shards.size(); ++k) {
    const std::string file =
        absl::StrFormat("model-%05d-of-%05d.safetensors", k + 1, shards.size());
    for (const auto& v : shards[k]) index["weight_map"][v.name] = file;
    absl::Status s = safetensors::WriteFile(absl::StrCat(dir, "/", file),
                                            shards[k], {{"format", "pt"}});
    if (!s.ok()) return s;
  }
  absl::Status s = WriteFileBytes(
      absl::StrCat(dir, "/model.safetensors.index.json"), index.dump(2) + "\n");
  if (!s.ok()) return s;
  return names;
}

std::string Qwen35ConfigJson(const Qwen35NormStackConfig& c, bool nested,
                             const std::string& dtype) {
  Json text;
  text["model_type"] = "qwen3_5_text";
  text["hidden_size"] = c.hidden_size;
  text["num_hidden_layers"] = c.num_hidden_layers;
  text["num_attention_heads"] = c.num_attention_heads;
  text["num_key_value_heads"] = c.num_key_value_heads;
  text["head_dim"] = c.head_dim;
  text["linear_num_value_heads"] = c.linear_num_value_heads;
  text["linear_value_head_dim"] = c.linear_value_head_dim;
  text["rms_norm_eps"] = c.rms_norm_eps;
  if (!c.layer_types.empty()) {
    Json types = Json::array();
    for (Qwen35LayerType t : c.layer_types) {
      types.push_back(t == Qwen35LayerType::kFullAttention
                          ? "full_attention"
                          : "linear_attention");
    }
    text["layer_types"] = types;
  }
  Json root;
  if (nested) {
    root["architectures"] = {"Qwen3_5ForConditionalGeneration"};
    root["model_type"] = "qwen3_5";
    root["dtype"] = dtype;
    root["text_config"] = text;
    root["vision_config"] = {{"depth", 1}, {"hidden_size", 8}};
  } else {
    root = Json::object({{"architectures", {"Qwen3_5ForCausalLM"}}});
    for (auto it = text.begin(); it != text.end(); ++it) {
      root[it.key()] = it.value();
    }
    root["dtype"] = dtype;
  }
  root["transformers_version"] = "5.17.0";
  return root.dump(2) + "\n";
}

std::string Gemma3ConfigJson(const Gemma3NormStackConfig& c, bool nested,
                             const std::string& dtype) {
  Json text;
  text["model_type"] = "gemma3_text";
  text["hidden_size"] = c.hidden_size;
  text["num_hidden_layers"] = c.num_hidden_layers;
  text["num_attention_heads"] = c.num_attention_heads;
  text["num_key_value_heads"] = c.num_key_value_heads;
  text["head_dim"] = c.head_dim;
  text["rms_norm_eps"] = c.rms_norm_eps;
  Json root;
  if (nested) {
    root["architectures"] = {"Gemma3ForConditionalGeneration"};
    root["model_type"] = "gemma3";
    root["dtype"] = dtype;
    root["text_config"] = text;
  } else {
    root = Json::object({{"architectures", {"Gemma3ForCausalLM"}}});
    for (auto it = text.begin(); it != text.end(); ++it) {
      root[it.key()] = it.value();
    }
    root["dtype"] = dtype;
  }
  root["transformers_version"] = "5.17.0";
  return root.dump(2) + "\n";
}

}  // namespace normgraph::testing
