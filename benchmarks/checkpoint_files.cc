#include "benchmarks/checkpoint_files.h"

#include <cstdlib>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/tensor_util.h"
#include "layers/safetensors/writer.h"
#include "layers/weights.h"

namespace normgraph {

std::string BenchmarkTempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  if (dir == nullptr) dir = std::getenv("TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

absl::StatusOr<int64_t> WriteRandomCheckpoint(Module& model,
                                              const std::string& path,
                                              uint64_t seed) {
  NG_ASSIGN_OR_RETURN(NamedTensors tensors, RandomWeights(model, seed));
  std::vector<safetensors::NamedView> views;
  for (const auto& [name, tensor] : tensors) {
    views.push_back({name, ViewOf(tensor)});
  }
  NG_RETURN_IF_ERROR(safetensors::WriteFile(path, views));
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  return static_cast<int64_t>(f.tellg());
}

}  // namespace normgraph
