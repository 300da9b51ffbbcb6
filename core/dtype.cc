#include "core/dtype.h"

namespace normgraph {

absl::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kBF16:
      return "bf16";
    case DType::kF16:
      return "f16";
  }
  return "invalid";
}

DType PromoteTypes(DType a, DType b) {
  if (a == b) return a;
  return DType::kF32;  // f32 with anything, or bf16 with f16
}

float RoundTo(DType dtype, float f) {
  switch (dtype) {
    case DType::kF32:
      return f;
    case DType::kBF16:
      return Bf16BitsToFloat(FloatToBf16Bits(f));
    case DType::kF16:
      return F16BitsToFloat(FloatToF16Bits(f));
  }
  return f;
}

float LoadAsFloat(const void* data, DType dtype, int64_t index) {
  const char* p = static_cast<const char*>(data) + index * DTypeSize(dtype);
  if (dtype == DType::kF32) {
    float v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  uint16_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return dtype == DType::kBF16 ? Bf16BitsToFloat(bits) : F16BitsToFloat(bits);
}

void StoreFromFloat(void* data, DType dtype, int64_t index, float value) {
  char* p = static_cast<char*>(data) + index * DTypeSize(dtype);
  if (dtype == DType::kF32) {
    std::memcpy(p, &value, sizeof value);
    return;
  }
  const uint16_t bits =
      dtype == DType::kBF16 ? FloatToBf16Bits(value) : FloatToF16Bits(value);
  std::memcpy(p, &bits, sizeof bits);
}

}  // namespace normgraph
