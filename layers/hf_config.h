#ifndef NORMGRAPH_LAYERS_HF_CONFIG_H_
#define NORMGRAPH_LAYERS_HF_CONFIG_H_

// A Hugging Face model's config.json, read for what the norm stacks need: the
// model family and the sizes of its norms.
//
// transformers writes config.json with `save_pretrained`, which leaves out
// every value equal to the config class's default (`to_diff_dict`), so a
// missing key means transformers 5.17's default: the defaults of
// Qwen35NormStackConfig and Gemma3NormStackConfig, which were read from
// Qwen3_5TextConfig() and Gemma3TextConfig() (testdata/hf_golden/
// hf_configs.json). For the other model types read as Qwen3.5 (qwen3_next,
// qwen3_5_moe), whose defaults normgraph does not have, a missing key that
// sizes a norm is an error. Multimodal configs
// (Qwen3_5ForConditionalGeneration, Gemma3ForConditionalGeneration) nest the
// text model's config under "text_config"; that part is what is read.
//
// The file is untrusted input: its size is bounded, every value is type- and
// range-checked, and errors name the file and the key.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/dtype.h"
#include "layers/gemma3_norm_stack.h"
#include "layers/qwen3_5_norm_stack.h"

namespace normgraph {

// Sizes a config may ask for; anything larger is refused as implausible (the
// largest published models are far below these).
inline constexpr int64_t kMaxConfigLayers = 1024;
inline constexpr int64_t kMaxConfigHidden = 65536;
inline constexpr int64_t kMaxConfigHeads = 4096;
inline constexpr int64_t kMaxConfigHeadDim = 65536;

// The largest config.json read (real ones are a few KiB).
inline constexpr size_t kMaxConfigJsonBytes = 16 << 20;

enum class HfFamily { kQwen35, kGemma3 };

struct HfModelConfig {
  std::string source;      // the file it was read from
  std::string model_type;  // of the text model, e.g. "qwen3_5_text"
  // The top-level model_type when the text model is nested ("qwen3_5",
  // "gemma3"); empty otherwise.
  std::string outer_model_type;
  std::string architecture;  // architectures[0], if given
  HfFamily family = HfFamily::kQwen35;
  // The sizes; only the one of `family` is meaningful. dtype and allocator are
  // left at their defaults.
  Qwen35NormStackConfig qwen;
  Gemma3NormStackConfig gemma;
  // "dtype" (transformers 5) or "torch_dtype" (4.x), when it is a float type
  // normgraph computes in.
  std::optional<DType> dtype;
  std::string dtype_name;  // as written, e.g. "bfloat16"; empty if absent
  // Keys read from the file (the rest came from the defaults).
  std::vector<std::string> keys_read;

  // "qwen3_5" or "gemma3": the name of the stack (normgraph's --model).
  absl::string_view family_name() const;
  int64_t num_hidden_layers() const;
  int64_t hidden_size() const;
};

// The model types understood, for messages ("qwen3_5_text, qwen3_5, ...").
std::vector<std::string> SupportedHfModelTypes();

// Parses config.json text; `source` names it in errors.
absl::StatusOr<HfModelConfig> ParseHfConfig(absl::string_view json,
                                            absl::string_view source);

// Reads and parses the config.json at `path`.
absl::StatusOr<HfModelConfig> ReadHfConfig(const std::string& path);

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_HF_CONFIG_H_
