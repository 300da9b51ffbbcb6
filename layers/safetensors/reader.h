#ifndef NORMGRAPH_LAYERS_SAFETENSORS_READER_H_
#define NORMGRAPH_LAYERS_SAFETENSORS_READER_H_

// A safetensors reader that treats every file as untrusted input.
//
// Before anything is exposed, the whole header is validated: header length
// against the file size, JSON syntax and nesting depth, duplicate names, every
// dtype and shape (no overflow), every data_offsets pair (in range, begin <=
// end, byte count == element count * element size), and the data section being
// exactly tiled by the tensors (no overlaps, no gaps), as the reference
// implementation requires. Errors name the file, the tensor and the field.
// Tensors are zero-copy views into the memory-mapped file (or the caller's
// bytes); their data may be unaligned. A file another process truncates
// while it is mapped makes reads past its new end fault (SIGBUS), as with any
// mapping: a writer must replace a checkpoint (write elsewhere, rename), not
// rewrite it in place. (PrepareCheckpoint copies every tensor once, which
// narrows that window to its own read.)

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "core/tensor_util.h"

namespace normgraph::safetensors {

struct TensorEntry {
  std::string name;
  std::string dtype_name;      // as written in the file, e.g. "BF16"
  std::optional<DType> dtype;  // set if normgraph computes in this dtype
  Shape shape;
  const uint8_t* data = nullptr;  // inside the file's bytes; may be unaligned
  size_t bytes = 0;

  // The tensor as a HostView; only valid if `dtype` is set.
  HostView view() const {
    return HostView{data, dtype.value_or(DType::kF32), shape};
  }
};

class SafetensorsFile {
 public:
  // Memory-maps and validates the file at `path`.
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);
  // Validates `bytes` (kept alive by the returned object). `source` names them
  // in errors.
  static absl::StatusOr<SafetensorsFile> FromBytes(
      std::shared_ptr<const std::string> bytes,
      absl::string_view source = "<memory>");

  // In file order of their data offsets.
  const std::vector<TensorEntry>& tensors() const { return tensors_; }
  // The tensor named `name`, or null.
  const TensorEntry* Find(absl::string_view name) const;
  const std::map<std::string, std::string>& metadata() const {
    return metadata_;
  }
  const std::string& source() const { return source_; }

 private:
  static absl::StatusOr<SafetensorsFile> Parse(
      absl::Span<const uint8_t> bytes, std::shared_ptr<const void> keep_alive,
      std::string source);

  std::shared_ptr<const void> keep_alive_;  // the mapping or the bytes
  std::string source_;
  std::vector<TensorEntry> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace normgraph::safetensors

#endif  // NORMGRAPH_LAYERS_SAFETENSORS_READER_H_
