#ifndef NORMGRAPH_CORE_DTYPE_H_
#define NORMGRAPH_CORE_DTYPE_H_

// Element types and their conversions.
//
// normgraph's numerics are defined bit for bit (DESIGN.md section 4), so the
// conversions here are exact IEEE round-to-nearest-even and follow PyTorch's
// CPU conversions in every corner:
// - bf16 <- f32: round to nearest even; every NaN becomes the canonical quiet
// NaN 0x7FC0 (as
//   c10::BFloat16 does); values past the largest finite bf16 round to infinity.
// - f16 <- f32: round to nearest even, with f16 subnormals; NaN becomes sign |
// 0x7E00 (as
//   c10::Half does); values at or past 65520 round to infinity.
// - f32 <- bf16 / f16: exact (every bf16 and f16 value is a float); NaN
// payloads are kept. The implementations use integer arithmetic only, so they
// do not depend on the floating-point environment (flush-to-zero, rounding
// mode) or on compiler support for _Float16 / __bf16.

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/strings/string_view.h"

namespace normgraph {

enum class DType : uint8_t {
  kF32,
  kBF16,
  kF16,
};

// Bytes per element.
constexpr size_t DTypeSize(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

// "f32", "bf16", "f16".
absl::string_view DTypeName(DType dtype);

// The result type of multiplying tensors of two dtypes in PyTorch (its type
// promotion): the wider float type; bf16 with f16 promotes to f32.
DType PromoteTypes(DType a, DType b);

// Storage types for the two 16-bit formats. They only hold bits: arithmetic
// happens in float.
struct Bf16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float FloatFromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline float Bf16BitsToFloat(uint16_t bits) {
  return FloatFromBits(static_cast<uint32_t>(bits) << 16);
}

inline uint16_t FloatToBf16Bits(float f) {
  const uint32_t u = FloatBits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;  // NaN
  // Round to nearest even: add 0x7FFF plus the lowest kept bit, then truncate.
  // A carry out of the mantissa correctly bumps the exponent, up to infinity.
  const uint32_t lsb = (u >> 16) & 1u;
  return static_cast<uint16_t>((u + 0x7FFFu + lsb) >> 16);
}

float F16BitsToFloat(uint16_t bits);
uint16_t FloatToF16Bits(float f);

// Uniform access for templated kernels: ToFloat / FromFloat<T>.
inline float ToFloat(float v) { return v; }
inline float ToFloat(Bf16 v) { return Bf16BitsToFloat(v.bits); }
inline float ToFloat(F16 v) { return F16BitsToFloat(v.bits); }

template <typename T>
T FromFloat(float f);
template <>
inline float FromFloat<float>(float f) {
  return f;
}
template <>
inline Bf16 FromFloat<Bf16>(float f) {
  return Bf16{FloatToBf16Bits(f)};
}
template <>
inline F16 FromFloat<F16>(float f) {
  return F16{FloatToF16Bits(f)};
}

// Rounds a float to the nearest value of `dtype` and returns it as a float (a
// no-op for kF32).
float RoundTo(DType dtype, float f);

// Reads element `index` of a buffer of `dtype` as float; the pointer may be
// unaligned.
float LoadAsFloat(const void* data, DType dtype, int64_t index);
// Writes `value` rounded to `dtype` into element `index`; the pointer may be
// unaligned.
void StoreFromFloat(void* data, DType dtype, int64_t index, float value);

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_DTYPE_H_
