#include "layers/hf_config.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "core/small_file.h"
#include "nlohmann/json.hpp"

namespace normgraph {
namespace {

using Json = nlohmann::json;

struct ModelType {
  const char* name;
  HfFamily family;
  bool composite;  // the text model's config is under "text_config"
  // The stack config's defaults are this config class's (read from
  // transformers). Where not, every key that sizes a norm must be in the file:
  // save_pretrained leaves out values equal to the class's defaults, which
  // normgraph would otherwise replace with another model's.
  bool defaults_known;
};

// model_type values whose norms the stacks model. Qwen3-Next and the MoE
// variants of Qwen3.5 have the same norms, under the same names, as Qwen3.5
// (not the same default sizes: Qwen3NextConfig's hidden size is 2048).
constexpr ModelType kModelTypes[] = {
    {"qwen3_5_text", HfFamily::kQwen35, false, true},
    {"qwen3_5", HfFamily::kQwen35, true, true},
    {"qwen3_5_moe_text", HfFamily::kQwen35, false, false},
    {"qwen3_5_moe", HfFamily::kQwen35, true, false},
    {"qwen3_next", HfFamily::kQwen35, false, false},
    {"gemma3_text", HfFamily::kGemma3, false, true},
    {"gemma3", HfFamily::kGemma3, true, true},
};

// For a model type whose defaults normgraph does not have: the first key of
// `keys` (or of `either`, a pair of alternatives) missing from `obj`.
std::optional<std::string> MissingKey(
    const nlohmann::json& obj, absl::Span<const char* const> keys,
    std::pair<const char*, const char*> either) {
  auto has = [&](const char* key) {
    auto it = obj.find(key);
    return it != obj.end() && !it->is_null();
  };
  for (const char* key : keys) {
    if (!has(key)) return std::string(key);
  }
  if (!has(either.first) && !has(either.second)) {
    return absl::StrCat(either.first, "' or '", either.second);
  }
  return std::nullopt;
}

const ModelType* FindModelType(absl::string_view name) {
  for (const ModelType& t : kModelTypes) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

absl::Status Bad(absl::string_view source, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("config ", source, ": ", what));
}

// Reads keys of one JSON object into a config; keeps the first error.
class KeyReader {
 public:
  KeyReader(const Json& obj, std::string where, HfModelConfig& c)
      : obj_(obj), where_(std::move(where)), c_(c) {}

  // An integer in [lo, hi], if present (and not null, unless `null_ok`:
  // transformers would fail on a null size; save_pretrained leaves a
  // defaulted key out, it does not write null).
  void Int(const char* key, int64_t lo, int64_t hi, int64_t& out,
           bool null_ok = false) {
    if (!null_ok && IsNull(key)) return;
    const Json* v = Find(key);
    if (v == nullptr) return;
    bool in_range = false;
    int64_t value = 0;
    if (v->is_number_unsigned()) {
      const uint64_t u = v->get<uint64_t>();
      in_range = u <= static_cast<uint64_t>(hi);
      value = in_range ? static_cast<int64_t>(u) : 0;
      in_range = in_range && value >= lo;
    } else if (v->is_number_integer()) {
      value = v->get<int64_t>();
      in_range = value >= lo && value <= hi;
    } else {
      Fail(absl::StrCat(where_, key, " = ", v->dump(), " is not an integer"));
      return;
    }
    if (!in_range) {
      Fail(absl::StrCat(where_, key, " = ", v->dump(),
                        " is outside the supported range ", lo, " to ", hi));
      return;
    }
    out = value;
    Read(key);
  }

  // rms_norm_eps, a number in (0, 1], if present (not null), that float32
  // holds as a normal number (the kernels add it in float32: 1e-46 would be
  // 0 there, and an all-zero row's norm infinite).
  void Eps(float& out) {
    if (IsNull("rms_norm_eps")) return;
    const Json* v = Find("rms_norm_eps");
    if (v == nullptr) return;
    const double d = v->is_number() ? v->get<double>() : -1.0;
    if (!std::isfinite(d) || d <= 0 || d > 1) {
      Fail(absl::StrCat(where_, "rms_norm_eps = ", v->dump(),
                        " is not a number in (0, 1]"));
      return;
    }
    const float f = static_cast<float>(d);
    if (!(f >= std::numeric_limits<float>::min())) {
      Fail(absl::StrCat(where_, "rms_norm_eps = ", v->dump(),
                        " is below float32's smallest normal number (",
                        std::numeric_limits<float>::min(), ")"));
      return;
    }
    out = f;
    Read("rms_norm_eps");
  }

  // Fails if `key` is present as null.
  bool IsNull(const char* key) {
    auto it = obj_.find(key);
    if (!status_.ok() || it == obj_.end() || !it->is_null()) return false;
    Fail(absl::StrCat(where_, key, " is null"));
    return true;
  }

  const Json* Find(const char* key) const {
    if (!status_.ok()) return nullptr;
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }
  void Read(const char* key) {
    c_.keys_read.push_back(absl::StrCat(where_, key));
  }
  void Fail(absl::string_view what) {
    if (status_.ok()) status_ = Bad(c_.source, what);
  }
  const std::string& where() const { return where_; }
  const absl::Status& status() const { return status_; }

 private:
  const Json& obj_;
  std::string where_;
  HfModelConfig& c_;
  absl::Status status_;
};

absl::Status ReadDType(const Json& obj, HfModelConfig& c) {
  for (const char* key : {"dtype", "torch_dtype"}) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) continue;
    if (!it->is_string()) {
      return Bad(c.source, absl::StrCat(key, " is not a string"));
    }
    c.dtype_name = it->get<std::string>();
    if (c.dtype_name == "bfloat16") {
      c.dtype = DType::kBF16;
    } else if (c.dtype_name == "float16") {
      c.dtype = DType::kF16;
    } else if (c.dtype_name == "float32") {
      c.dtype = DType::kF32;
    } else {
      return Bad(c.source,
                 absl::StrCat(key, " '", c.dtype_name,
                              "' is not a dtype normgraph runs (bfloat16, "
                              "float16, float32)"));
    }
    c.keys_read.push_back(key);
    return absl::OkStatus();
  }
  return absl::OkStatus();
}

// `layer_types`, read as transformers validates it: a list of one entry per
// layer, each one of `valid`; the entries' indices into `valid` (empty if the
// key is absent or null).
absl::StatusOr<std::vector<size_t>> ReadLayerTypes(
    KeyReader& r, const std::string& where, int64_t layers,
    std::initializer_list<absl::string_view> valid, const HfModelConfig& c) {
  std::vector<size_t> out;
  const Json* types = r.Find("layer_types");
  if (types == nullptr) return out;
  if (!types->is_array()) {
    return Bad(c.source, absl::StrCat(where, "layer_types is not a list"));
  }
  if (static_cast<int64_t>(types->size()) != layers) {
    return Bad(c.source,
               absl::StrCat(where, "layer_types has ", types->size(),
                            " entries for num_hidden_layers = ", layers));
  }
  for (size_t i = 0; i < types->size(); ++i) {
    const Json& e = (*types)[i];
    const std::string name = e.is_string() ? e.get<std::string>() : e.dump();
    const auto found = std::find(valid.begin(), valid.end(), name);
    if (found == valid.end()) {
      return Bad(c.source,
                 absl::StrCat(where, "layer_types[", i, "] = '", name,
                              "'; valid: ", absl::StrJoin(valid, ", ")));
    }
    out.push_back(static_cast<size_t>(found - valid.begin()));
  }
  r.Read("layer_types");
  return out;
}

absl::Status ReadQwen(const Json& t, const std::string& where,
                      bool defaults_known, HfModelConfig& c) {
  if (!defaults_known) {
    static constexpr const char* kSizing[] = {
        "num_hidden_layers",     "hidden_size", "num_attention_heads",
        "num_key_value_heads",   "head_dim",    "linear_num_value_heads",
        "linear_value_head_dim", "rms_norm_eps"};
    if (std::optional<std::string> missing = MissingKey(
            t, kSizing, {"layer_types", "full_attention_interval"})) {
      return Bad(c.source,
                 absl::StrCat("'", where, *missing,
                              "' is missing, and normgraph does not know "
                              "transformers' default for model_type '",
                              c.model_type,
                              "' (it has Qwen3.5's and Gemma3's only): write "
                              "the value into the file"));
    }
  }
  Qwen35NormStackConfig& q = c.qwen;
  KeyReader r(t, where, c);
  r.Int("num_hidden_layers", 1, kMaxConfigLayers, q.num_hidden_layers);
  r.Int("hidden_size", 1, kMaxConfigHidden, q.hidden_size);
  r.Int("num_attention_heads", 1, kMaxConfigHeads, q.num_attention_heads);
  r.Int("num_key_value_heads", 1, kMaxConfigHeads, q.num_key_value_heads);
  r.Int("head_dim", 1, kMaxConfigHeadDim, q.head_dim);
  r.Int("linear_num_value_heads", 1, kMaxConfigHeads, q.linear_num_value_heads);
  r.Int("linear_value_head_dim", 1, kMaxConfigHeadDim, q.linear_value_head_dim);
  r.Eps(q.rms_norm_eps);
  if (!r.status().ok()) return r.status();

  // The layer pattern: layer_types, else every full_attention_interval-th
  // layer is full attention (Qwen3-Next), else the Qwen3.5 default (every 4th).
  q.layer_types.clear();
  absl::StatusOr<std::vector<size_t>> types = ReadLayerTypes(
      r, where, q.num_hidden_layers, {"linear_attention", "full_attention"}, c);
  if (!types.ok()) return types.status();
  for (size_t type : *types) {
    q.layer_types.push_back(type == 0 ? Qwen35LayerType::kLinearAttention
                                      : Qwen35LayerType::kFullAttention);
  }
  if (types->empty()) {
    int64_t interval = 4;
    r.Int("full_attention_interval", 1, kMaxConfigLayers, interval,
          /*null_ok=*/true);
    if (!r.status().ok()) return r.status();
    for (int64_t i = 0; i < q.num_hidden_layers; ++i) {
      q.layer_types.push_back((i + 1) % interval == 0
                                  ? Qwen35LayerType::kFullAttention
                                  : Qwen35LayerType::kLinearAttention);
    }
  }
  return absl::OkStatus();
}

absl::Status ReadGemma(const Json& t, const std::string& where,
                       HfModelConfig& c) {
  Gemma3NormStackConfig& g = c.gemma;
  KeyReader r(t, where, c);
  r.Int("num_hidden_layers", 1, kMaxConfigLayers, g.num_hidden_layers);
  r.Int("hidden_size", 1, kMaxConfigHidden, g.hidden_size);
  r.Int("num_attention_heads", 1, kMaxConfigHeads, g.num_attention_heads);
  r.Int("num_key_value_heads", 1, kMaxConfigHeads, g.num_key_value_heads);
  r.Int("head_dim", 1, kMaxConfigHeadDim, g.head_dim);
  r.Eps(g.rms_norm_eps);
  if (!r.status().ok()) return r.status();
  // Sliding and full attention layers have the same norms, but a pattern
  // transformers refuses (layer_type_validation) is refused here too.
  return ReadLayerTypes(r, where, g.num_hidden_layers,
                        {"sliding_attention", "full_attention"}, c)
      .status();
}

}  // namespace

absl::string_view HfModelConfig::family_name() const {
  return family == HfFamily::kQwen35 ? "qwen3_5" : "gemma3";
}

int64_t HfModelConfig::num_hidden_layers() const {
  return family == HfFamily::kQwen35 ? qwen.num_hidden_layers
                                     : gemma.num_hidden_layers;
}

int64_t HfModelConfig::hidden_size() const {
  return family == HfFamily::kQwen35 ? qwen.hidden_size : gemma.hidden_size;
}

std::vector<std::string> SupportedHfModelTypes() {
  std::vector<std::string> out;
  for (const ModelType& t : kModelTypes) out.push_back(t.name);
  return out;
}

absl::StatusOr<HfModelConfig> ParseHfConfig(absl::string_view json,
                                            absl::string_view source) {
  HfModelConfig c;
  c.source = std::string(source);
  if (json.size() > kMaxConfigJsonBytes) {
    return Bad(source, absl::StrCat("file is ", json.size(),
                                    " bytes; a config.json is at most ",
                                    kMaxConfigJsonBytes));
  }
  // nlohmann's parser stops at a NUL byte, accepting whatever follows.
  if (const size_t nul = json.find('\0'); nul != absl::string_view::npos) {
    return Bad(source,
               absl::StrCat("not valid JSON (a NUL byte at offset ", nul, ")"));
  }
  Json root = Json::parse(json.begin(), json.end(), nullptr,
                          /*allow_exceptions=*/false);
  if (root.is_discarded()) return Bad(source, "not valid JSON");
  if (!root.is_object()) return Bad(source, "not a JSON object");

  auto type_of = [&](const Json& obj) -> std::string {
    auto it = obj.find("model_type");
    return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
  };
  const std::string outer = type_of(root);
  if (outer.empty()) {
    return Bad(source,
               absl::StrCat("no \"model_type\" string; normgraph "
                            "reads the norms of model types ",
                            absl::StrJoin(SupportedHfModelTypes(), ", ")));
  }
  const ModelType* type = FindModelType(outer);
  if (type == nullptr) {
    return Bad(source,
               absl::StrCat("model_type '", outer,
                            "' is not one normgraph models; supported: ",
                            absl::StrJoin(SupportedHfModelTypes(), ", ")));
  }
  auto arch = root.find("architectures");
  if (arch != root.end() && arch->is_array() && !arch->empty() &&
      (*arch)[0].is_string()) {
    c.architecture = (*arch)[0].get<std::string>();
  }
  const Json* text = &root;
  std::string where;
  static const Json kEmpty = Json::object();
  if (type->composite) {
    c.outer_model_type = outer;
    auto it = root.find("text_config");
    if (it == root.end() || it->is_null()) {
      text = &kEmpty;  // every value is the text config's default
    } else if (!it->is_object()) {
      return Bad(source, "text_config is not an object");
    } else {
      text = &*it;
    }
    where = "text_config.";
    // transformers reads text_config with the outer type's own text config
    // class (qwen3_5_moe: Qwen3_5MoeTextConfig, whose defaults differ from
    // qwen3_5_text's): an inner type naming another is refused, not read
    // with the wrong defaults.
    const std::string own = absl::StrCat(outer, "_text");
    const std::string inner = type_of(*text);
    if (!inner.empty() && inner != own) {
      return Bad(source, absl::StrCat("text_config.model_type '", inner,
                                      "' does not belong to '", outer,
                                      "' (its text model is '", own, "')"));
    }
    c.model_type = own;
  } else {
    c.model_type = outer;
  }
  c.family = type->family;
  if (auto st = ReadDType(root, c); !st.ok()) return st;
  if (!c.dtype && text != &root) {
    if (auto st = ReadDType(*text, c); !st.ok()) return st;
  }
  if (c.family == HfFamily::kQwen35) {
    // The text model's type (the outer one's own, or its text_config's).
    const ModelType* text_type = FindModelType(c.model_type);
    const bool defaults_known =
        text_type != nullptr && text_type->defaults_known;
    if (auto st = ReadQwen(*text, where, defaults_known, c); !st.ok()) {
      return st;
    }
  } else {
    if (auto st = ReadGemma(*text, where, c); !st.ok()) return st;
  }
  return c;
}

absl::StatusOr<HfModelConfig> ReadHfConfig(const std::string& path) {
  absl::StatusOr<std::string> text =
      ReadSmallFile(path, kMaxConfigJsonBytes, "config");
  if (!text.ok()) return text.status();
  return ParseHfConfig(*text, path);
}

}  // namespace normgraph
