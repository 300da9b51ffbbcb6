#include "layers/safetensors/format.h"

#include <utility>

namespace normgraph::safetensors {
namespace {

// Every dtype the format defines, with its bits per element: the sub-byte
// and scale types of quantized checkpoints too (MX formats: F4 = E2M1 two to
// a byte, F6, the E8M0 scales), so that such a file opens and its norm
// weights load; normgraph computes in F32, BF16 and F16 only (ToDType).
constexpr std::pair<absl::string_view, size_t> kDTypes[] = {
    {"BOOL", 8},    {"U8", 8},      {"I8", 8},          {"F8_E5M2", 8},
    {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8}, {"F8_E5M2FNUZ", 8},
    {"F4", 4},      {"F6_E2M3", 6}, {"F6_E3M2", 6},     {"I16", 16},
    {"U16", 16},    {"F16", 16},    {"BF16", 16},       {"I32", 32},
    {"U32", 32},    {"F32", 32},    {"F64", 64},        {"I64", 64},
    {"U64", 64},    {"C64", 64},
};

}  // namespace

std::optional<size_t> ElementBits(absl::string_view dtype_name) {
  for (const auto& [name, bits] : kDTypes) {
    if (name == dtype_name) return bits;
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
