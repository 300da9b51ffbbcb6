#ifndef NORMGRAPH_LAYERS_CHECKPOINT_DIR_TESTING_H_
#define NORMGRAPH_LAYERS_CHECKPOINT_DIR_TESTING_H_

// Test support: writes checkpoints in the layouts of Hugging Face's
// `save_pretrained` with normgraph's own safetensors writer: one
// model.safetensors, or shards model-0000K-of-0000N.safetensors with
// model.safetensors.index.json, next to a config.json, with the non-norm
// tensors a real checkpoint has (embeddings, projections, lm_head, a vision
// tower, multi-token-prediction layers) and the text model under any prefix.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "layers/gemma3_norm_stack.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/weights.h"

namespace normgraph::testing {

struct HfLayout {
  // Checkpoint names are `prefix` + the model's names without "model.".
  std::string prefix = "model.";
  // 0: one model.safetensors. Otherwise shards of at most this many bytes of
  // tensor data (a tensor larger than that gets a shard of its own), and
  // model.safetensors.index.json.
  int64_t max_shard_bytes = 0;
  // Written as config.json when not empty.
  std::string config_json;
  // Non-norm tensors under the prefix (embed_tokens, per-layer projections)
  // and lm_head.weight outside it.
  bool extras = true;
  // A vision tower's tensors ("model.visual.blocks.0.norm1.weight", ...).
  bool vision = false;
  // Qwen's multi-token-prediction layer ("mtp.layers.0.input_layernorm...").
  bool mtp = false;
  // File name of the single file (max_shard_bytes == 0).
  std::string file_name = "model.safetensors";
};

// Writes `weights` (the model's names, "model.layers.0...") into `dir`
// (created if missing) in `layout`. Returns the tensor names written.
absl::StatusOr<std::vector<std::string>> WriteHfCheckpoint(
    const std::string& dir, const NamedTensors& weights,
    const HfLayout& layout);

// config.json text as save_pretrained writes it (model_type, architectures,
// the sizes, layer_types, dtype). `nested`: the multimodal form, the text
// config under "text_config".
std::string Qwen35ConfigJson(const Qwen35NormStackConfig& c, bool nested,
                             const std::string& dtype = "bfloat16");
std::string Gemma3ConfigJson(const Gemma3NormStackConfig& c, bool nested,
                             const std::string& dtype = "bfloat16");

// Writes `bytes` to `path`.
absl::Status WriteFileBytes(const std::string& path, const std::string& bytes);

}  // namespace normgraph::testing

#endif  // NORMGRAPH_LAYERS_CHECKPOINT_DIR_TESTING_H_
