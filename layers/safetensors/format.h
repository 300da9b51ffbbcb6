#ifndef NORMGRAPH_LAYERS_SAFETENSORS_FORMAT_H_
#define NORMGRAPH_LAYERS_SAFETENSORS_FORMAT_H_

// The safetensors format (https://github.com/huggingface/safetensors), as used
// by Qwen3.5 and Gemma checkpoints: an 8-byte little-endian header length N, N
// bytes of JSON
// `{name: {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]},
// "__metadata__": {..}}` (optionally padded with spaces), then the raw
// little-endian tensor data. Offsets are relative to the start of the data
// section.

#include <cstddef>
#include <optional>

#include "absl/strings/string_view.h"
#include "core/dtype.h"

namespace normgraph::safetensors {

// The largest header a reader accepts (the reference implementation's limit).
inline constexpr size_t kMaxHeaderBytes = 100 * 1000 * 1000;

// Bits per element of a safetensors dtype name ("BF16" -> 16, "F4" -> 4), or
// nullopt if unknown. A tensor of a sub-byte dtype fills whole bytes.
std::optional<size_t> ElementBits(absl::string_view dtype_name);

// The normgraph dtype of a safetensors dtype name, if normgraph computes in it.
std::optional<DType> ToDType(absl::string_view dtype_name);

// "F32", "BF16", "F16".
absl::string_view DTypeToName(DType dtype);

}  // namespace normgraph::safetensors

#endif  // NORMGRAPH_LAYERS_SAFETENSORS_FORMAT_H_
