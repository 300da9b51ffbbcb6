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

float F16BitsToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1Fu;
  const uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0x1F) {  // infinity or NaN; the payload moves to the top of
                           // f32's mantissa
    return FloatFromBits(sign | 0x7F800000u | (mantissa << 13));
  }
  if (exponent == 0) {
    if (mantissa == 0) return FloatFromBits(sign);
    // Subnormal: mantissa * 2^-24, exact in f32. Normalise by hand rather than
    // multiplying so the result does not depend on flush-to-zero settings.
    int shift = 0;
    uint32_t m = mantissa;
    while ((m & 0x400u) == 0) {
      m <<= 1;
      ++shift;
    }
    const uint32_t f32_exponent = 127 - 15 + 1 - shift;
    return FloatFromBits(sign | (f32_exponent << 23) | ((m & 0x3FFu) << 13));
  }
  return FloatFromBits(sign | ((exponent + (127 - 15)) << 23) |
                       (mantissa << 13));
}

uint16_t FloatToF16Bits(float f) {
  const uint32_t u = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t magnitude = u & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return sign | 0x7E00u;  // NaN
  // 65520 = 0x477FF000 is the midpoint between the largest finite f16 (65504,
  // odd mantissa) and 2^16: it and everything above round to infinity.
  if (magnitude >= 0x477FF000u) return sign | 0x7C00u;
  if (magnitude <
      0x38800000u) {  // below 2^-14, the smallest normal f16: subnormal or zero
    // 2^-25 (0x33000000) is the tie between zero and the smallest subnormal; it
    // rounds to zero.
    if (magnitude <= 0x33000000u) return sign;
    const uint32_t exponent = magnitude >> 23;  // 102 .. 112
    const uint32_t mantissa = (magnitude & 0x7FFFFFu) | 0x800000u;
    // value / 2^-24 = mantissa * 2^(exponent - 126)
    const uint32_t shift = 126 - exponent;  // 14 .. 24
    uint32_t q = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1u)))
      ++q;  // may carry into the smallest normal
    return sign | static_cast<uint16_t>(q);
  }
  // Normal: rebias the exponent (127 -> 15) and drop 13 mantissa bits, rounding
  // to nearest even.
  const uint32_t rebased = magnitude - ((127u - 15u) << 23);
  uint32_t q = rebased >> 13;
  const uint32_t rest = rebased & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (q & 1u))) ++q;
  return sign | static_cast<uint16_t>(q);
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
