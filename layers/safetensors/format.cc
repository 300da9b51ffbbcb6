#include "layers/safetensors/format.h"

#include <utility>

namespace normgraph::safetensors {
namespace {

constexpr std::pair<absl::string_view, size_t> kDTypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
    {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8},
};

}  // namespace

std::optional<size_t> ElementSize(absl::string_view dtype_name) {
  for (const auto& [name, size] : kDTypes) {
    if (name == dtype_name) return size;
  }
  return std::nullopt;
}

std::optional<DType> ToDType(absl::string_view dtype_name) {
  if (dtype_name == "F32") return DType::kF32;
  if (dtype_name == "BF16") return DType::kBF16;
  if (dtype_name == "F16") return DType::kF16;
  return std::nullopt;
}

absl::string_view DTypeToName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kBF16:
      return "BF16";
    case DType::kF16:
      return "F16";
  }
  return "?";
}

}  // namespace normgraph::safetensors
