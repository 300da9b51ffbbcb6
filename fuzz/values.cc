#include "fuzz/values.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"

namespace normgraph {
namespace fuzz {

uint32_t FloatToBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

namespace {

// Round to nearest even onto the grid of a format with `mantissa_bits`
// stored mantissa bits and smallest normal exponent `min_exponent`, in
// double arithmetic (std::nearbyint rounds ties to even). The slow, obvious
// path, for values outside EncodeValue's fast paths.
double RoundToFormat(double a, int mantissa_bits, int min_exponent) {
  if (a == 0.0) return 0.0;
  int e;
  std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1)
  const int quantum = std::max(e - 1, min_exponent) - mantissa_bits;
  return std::ldexp(std::nearbyint(std::ldexp(a, -quantum)), quantum);
}

// Drops the low `drop` bits of `bits` rounding to nearest, ties to even (a
// carry into the exponent is the right result).
uint32_t DropBitsNearestEven(uint32_t bits, int drop) {
  const uint32_t kept = bits >> drop;
  const uint32_t rest = bits & ((1u << drop) - 1);
  const uint32_t half = 1u << (drop - 1);
  return kept + (rest > half || (rest == half && (kept & 1)) ? 1 : 0);
}

}  // namespace

uint32_t EncodeValue(DType dtype, float f) {
  const uint32_t u = FloatToBits(f);
  if (dtype == DType::kF32) return u;
  // c10's NaN rules: bf16's quiet NaN without its sign, f16's with it.
  if (f != f)
    return dtype == DType::kBF16 ? 0x7FC0u : (u >> 31) << 15 | 0x7E00u;
  const uint32_t sign = u >> 31;
  const uint32_t magnitude = u & 0x7FFFFFFFu;
  const uint32_t exponent = magnitude >> 23;
  if (dtype == DType::kBF16) {
    if (exponent >= 1 && exponent <= 253) {  // normal, far from overflow
      return (sign << 15) | DropBitsNearestEven(magnitude, 16);
    }
    const double r = RoundToFormat(std::fabs(static_cast<double>(f)), 7, -126);
    if (r > 3.3895313892515355e38) return (sign << 15) | 0x7F80u;
    return (sign << 15) | (FloatToBits(static_cast<float>(r)) >> 16);
  }
  if (exponent >= 127 - 14 && exponent <= 127 + 14) {  // f16 normals
    return (sign << 15) |
           DropBitsNearestEven(magnitude - ((127u - 15u) << 23), 13);
  }
  const double r = RoundToFormat(std::fabs(static_cast<double>(f)), 10, -14);
  if (r >= 65536.0) return (sign << 15) | 0x7C00u;
  if (r < std::ldexp(1.0, -14)) {
    return (sign << 15) | static_cast<uint32_t>(std::ldexp(r, 24));
  }
  int e;
  const double m = std::frexp(r, &e);  // r = m 2^e, m in [0.5, 1)
  const uint32_t mantissa = static_cast<uint32_t>(std::ldexp(m, 11)) - 1024u;
  return (sign << 15) | (static_cast<uint32_t>(e - 1 + 15) << 10) | mantissa;
}

float DecodeValue(DType dtype, const uint8_t* p) {
  if (dtype == DType::kF32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  if (dtype == DType::kBF16) return BitsToFloat(static_cast<uint32_t>(h) << 16);
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const int exponent = (h >> 10) & 0x1F;
  const int mantissa = h & 0x3FF;
  if (exponent > 0 && exponent < 0x1F) {
    return BitsToFloat(sign | static_cast<uint32_t>(exponent + 112) << 23 |
                       static_cast<uint32_t>(mantissa) << 13);
  }
  if (exponent == 0x1F) {  // infinity, or a NaN keeping its sign and payload
    return BitsToFloat(sign | 0x7F800000u |
                       static_cast<uint32_t>(mantissa) << 13);
  }
  const double s = sign != 0 ? -1.0 : 1.0;
  return static_cast<float>(s * std::ldexp(mantissa, -24));
}

std::string ValueText(DType dtype, const uint8_t* p) {
  uint32_t bits = 0;
  std::memcpy(&bits, p, DTypeSize(dtype));
  return absl::StrFormat("%.9g (%#x)", DecodeValue(dtype, p), bits);
}

void StoreValue(DType dtype, float f, uint8_t* p) {
  const uint32_t bits = EncodeValue(dtype, f);
  if (DTypeSize(dtype) == 4) {
    std::memcpy(p, &bits, 4);
  } else {
    const uint16_t h = static_cast<uint16_t>(bits);
    std::memcpy(p, &h, 2);
  }
}

}  // namespace fuzz
}  // namespace normgraph
