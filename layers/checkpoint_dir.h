#ifndef NORMGRAPH_LAYERS_CHECKPOINT_DIR_H_
#define NORMGRAPH_LAYERS_CHECKPOINT_DIR_H_

// Loading the norm weights of real Hugging Face checkpoints: one safetensors
// file, a sharded checkpoint (`model.safetensors.index.json` and the shards it
// names), or the model directory holding either (and config.json).
//
// A full checkpoint holds far more than norms (embeddings, attention and MLP
// projections, a vision tower, MTP layers). Tensors the norm stack has no
// parameter for are "unexpected": an error by default, or, with
// `ignore_unexpected`, skipped and listed in the report.
//
// The text model's tensors may sit under a prefix other than the stack's
// "model.": "model.language_model." in transformers 5's multimodal models
// (Qwen3_5ForConditionalGeneration, Gemma3ForConditionalGeneration),
// "language_model.model." in older multimodal checkpoints, none at all in a
// saved base model. The prefix is detected from the tensor names (or given),
// and checkpoint name `PREFIX + rest` loads into parameter `model.` + rest.
//
// Loading is transactional across shards: every shard is opened and validated
// (header, offsets, the index's claims), every norm tensor is checked against
// its parameter (name, shape, dtype, optionally finite values) and read into
// host memory, and only then is anything written, in place, through
// LoadWeights. Every error before that point says that no weight was changed.
// Index and shard names are untrusted: a shard name must be a plain file name
// in the checkpoint's directory.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "layers/module.h"
#include "layers/weights.h"

namespace normgraph {

// The prefix under which the stack's parameters are named.
inline constexpr absl::string_view kModelPrefix = "model.";

// CheckpointOptions::prefix value: detect it from the tensor names.
inline constexpr absl::string_view kAutoPrefix = "auto";

// Prefixes of the text model in known checkpoint layouts, in the order auto
// detection prefers them when several fit.
const std::vector<std::string>& KnownTextModelPrefixes();

// The largest model.safetensors.index.json read.
inline constexpr size_t kMaxIndexJsonBytes = 256 << 20;

struct CheckpointLocation {
  enum class Kind { kFile, kSharded };
  Kind kind = Kind::kFile;
  std::string given;            // the path as given
  bool from_directory = false;  // `given` was a directory
  std::string path;             // the safetensors file, or the index.json
  std::string directory;        // where `path` (and the shards) are
  // Every safetensors file, in load order (one for kFile; for kSharded the
  // distinct shards of the index, in natural name order: 2 before 10).
  std::vector<std::string> files;
  // kSharded: tensor name -> shard file name, from the index.
  std::map<std::string, std::string> weight_map;
  // `directory`/config.json if it exists, else empty.
  std::string config_json;

  absl::string_view kind_name() const {
    return kind == Kind::kFile ? "file" : "sharded";
  }
};

// Finds the checkpoint at `path`: a .safetensors file; an index.json; or a
// directory holding model.safetensors.index.json, else model.safetensors, else
// exactly one *.safetensors.index.json or one *.safetensors. Reads and checks
// the index (every shard exists and is a plain file name). Errors (NOT_FOUND,
// INVALID_ARGUMENT, DATA_LOSS) say what was looked for, and where.
absl::StatusOr<CheckpointLocation> LocateCheckpoint(const std::string& path);

struct CheckpointOptions {
  // kAutoPrefix, or the prefix that replaces "model." in checkpoint names
  // ("model.language_model."; "" for none). A prefix without a trailing dot
  // gets one.
  std::string prefix = std::string(kAutoPrefix);
  // Skip (and report) tensors the model has no parameter for, instead of
  // refusing the checkpoint.
  bool ignore_unexpected = false;
  // Parameters the checkpoint lacks keep their values instead of being an
  // error.
  bool allow_missing = false;
  // Refuse tensors holding NaN or infinity.
  bool check_finite = true;
  // Load f32 / bf16 / f16 into a parameter of another float dtype (rounded to
  // nearest even); the conversions are reported.
  bool allow_dtype_conversion = true;
};

struct CheckpointReport {
  std::string source;  // the checkpoint, for messages
  std::string prefix;  // the prefix used
  // Chosen by auto detection (kAutoPrefix): from the names, or "model." when
  // no name tells.
  bool prefix_detected = false;
  int shards = 0;       // safetensors files read
  int64_t tensors = 0;  // tensors in the checkpoint
  int64_t bytes = 0;    // bytes of the norm tensors read
  LoadReport load;      // loaded / converted / missing (after the load)
  // Checkpoint names (as in the file) skipped with ignore_unexpected, in
  // natural order.
  std::vector<std::string> ignored;
  // "BF16 -> F32": number of tensors converted so.
  std::map<std::string, int> conversions;
};

// A checkpoint opened, validated against a model and read into host memory,
// ready to be loaded (any number of times) with LoadPrepared.
struct PreparedCheckpoint {
  CheckpointReport report;
  WeightSet weights;  // the norm tensors under the model's names
};

// Everything but the write: locates nothing (see LocateCheckpoint), reads
// every file of `location`, maps names through the prefix, checks every norm
// tensor against its parameter in `model`, every parameter's presence, and,
// with check_finite, every value. Changes nothing in `model`.
absl::StatusOr<PreparedCheckpoint> PrepareCheckpoint(
    Module& model, const CheckpointLocation& location,
    const CheckpointOptions& options);

// Writes a prepared checkpoint into `model` (transactional, in place:
// LoadWeights). Returns the report with `load` filled in.
absl::StatusOr<CheckpointReport> LoadPrepared(
    Module& model, const PreparedCheckpoint& prepared,
    const CheckpointOptions& options);

// PrepareCheckpoint + LoadPrepared.
absl::StatusOr<CheckpointReport> LoadCheckpointFrom(
    Module& model, const CheckpointLocation& location,
    const CheckpointOptions& options);

// Detects the text model's prefix among checkpoint `names`: the part before
// "layers.N.input_layernorm.weight". If several fit (e.g. "model." and Qwen's
// multi-token-prediction "mtp."), the first of KnownTextModelPrefixes();
// if none of those fits either, an error naming them. "model." if no name
// fits.
absl::StatusOr<std::string> DetectPrefix(const std::vector<std::string>& names);

// Names compared with digit runs as numbers: "layers.2.x" < "layers.10.x".
bool NaturalLess(absl::string_view a, absl::string_view b);

// A short summary of many names: digit runs between dots become '*', and
// equal patterns are counted ("model.layers.*.mlp.up_proj.weight (x32)"). At
// most `max_groups` groups (by count, then natural order), then "... and N
// more".
std::string SummarizeNames(const std::vector<std::string>& names,
                           size_t max_groups = 8);

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_CHECKPOINT_DIR_H_
