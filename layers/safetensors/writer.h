#ifndef NORMGRAPH_LAYERS_SAFETENSORS_WRITER_H_
#define NORMGRAPH_LAYERS_SAFETENSORS_WRITER_H_

// A safetensors writer, for tests, demos and synthetic checkpoints. Tensors are
// written in the order given, contiguously; the header is padded with spaces to
// a multiple of 8 bytes so the data section starts aligned, as the reference
// implementation does.

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/tensor_util.h"

namespace normgraph::safetensors {

struct NamedView {
  std::string name;
  HostView view;
};

// The bytes of a safetensors file holding `tensors` and `metadata`.
absl::StatusOr<std::string> Serialize(
    absl::Span<const NamedView> tensors,
    const std::map<std::string, std::string>& metadata = {});

// Serialize() written to `path` (replaced atomically through a temporary file).
absl::Status WriteFile(const std::string& path,
                       absl::Span<const NamedView> tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace normgraph::safetensors

#endif  // NORMGRAPH_LAYERS_SAFETENSORS_WRITER_H_
