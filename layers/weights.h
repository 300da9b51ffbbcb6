#ifndef NORMGRAPH_LAYERS_WEIGHTS_H_
#define NORMGRAPH_LAYERS_WEIGHTS_H_

// Transactional weight loading into a module tree, from a safetensors
// checkpoint or from in-memory tensors (an RL trainer pushing new weights).
//
// LoadWeights first validates every tensor against the model (unexpected names,
// missing names, shapes, dtypes), and only if all of it is right copies the
// tensors into the parameters' existing storage, in place, refreshing derived
// buffers; at the end every derived buffer of the model that is stale (its
// source's storage was written, e.g. through a tied or packed neighbour) is
// refreshed too. On any error nothing changes, and the error lists every
// problem by tensor name. (Should a loader itself fail half-way, the parameters
// it already wrote are restored from backups taken before the first write,
// and every derived buffer left stale is refreshed again.)
//
// Tensors are written in the source's order: two names of tied parameters
// (one storage) end with the later one's values, and a source that is a view
// of one of the model's own parameters is read when its turn comes, not as it
// was when the load began (swap two parameters through host copies).

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "layers/module.h"
#include "layers/safetensors/reader.h"

namespace normgraph {

// One named tensor to load.
struct SourceTensor {
  std::string name;
  std::string dtype_name;      // as the source spells it ("BF16", "I64", ...)
  std::optional<DType> dtype;  // set if it is a float type normgraph loads
  HostView view;
};

// A set of named host tensors to load. It refers to memory owned elsewhere (the
// safetensors file, or tensors it keeps references to).
class WeightSet {
 public:
  // Views of every tensor in `file`, which must outlive the set.
  static WeightSet FromSafetensors(const safetensors::SafetensorsFile& file);
  // Contiguous CPU tensors pushed from memory; the set keeps them alive.
  static absl::StatusOr<WeightSet> FromTensors(
      std::vector<std::pair<std::string, Tensor>> tensors);

  const std::vector<SourceTensor>& tensors() const { return tensors_; }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<SourceTensor> tensors_;
  std::vector<Tensor> keep_alive_;
};

struct LoadOptions {
  // Tensors the model has no parameter for are an error unless ignored (they
  // are then reported in LoadReport::unexpected), like transformers' unexpected
  // keys.
  bool ignore_unexpected = false;
  // Parameters the source lacks are an error unless allowed: an update may then
  // be a subset.
  bool allow_missing = false;
  // f32 / bf16 / f16 sources may load into a parameter of another float dtype
  // (rounded to nearest even), as torch's copy_ does.
  bool allow_dtype_conversion = true;
};

struct LoadReport {
  int loaded = 0;
  int converted = 0;  // loaded with a dtype conversion
  std::vector<std::string>
      missing;  // parameters not in the source (allow_missing)
  std::vector<std::string>
      unexpected;  // source tensors with no parameter (ignore_unexpected)
};

absl::StatusOr<LoadReport> LoadWeights(Module& model, const WeightSet& weights,
                                       const LoadOptions& options = {});

// Opens the safetensors checkpoint at `path` and loads it (a corrupt file
// changes nothing).
absl::StatusOr<LoadReport> LoadCheckpoint(Module& model,
                                          const std::string& path,
                                          const LoadOptions& options = {});

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Normally distributed weights for every parameter of `model`, in each
// parameter's dtype, from a deterministic seed: near 0 for parameters that
// derived buffers are computed from (zero-centred norms, `1 + w`), near 1 for
// the others, as trained norm weights are.
absl::StatusOr<NamedTensors> RandomWeights(Module& model, uint64_t seed,
                                           float stddev = 0.3f);

// Host copies of every parameter of `model` (on any device), with dotted
// names, in registration order: e.g. to write a checkpoint.
absl::StatusOr<NamedTensors> ParameterCopies(Module& model);

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_WEIGHTS_H_
