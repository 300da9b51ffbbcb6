#ifndef NORMGRAPH_CORE_DTYPE_H_
#define NORMGRAPH_CORE_DTYPE_H_

// Element types and their conversions.
//
// normgraph's numerics are defined bit for bit (docs/numerics.md), so the
// conversions are exact IEEE round-to-nearest-even and follow PyTorch's CPU
// conversions in every corner; they live in core/float_bits.h, which the CUDA
// kernels share.

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/strings/string_view.h"
#include "core/float_bits.h"

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

// Calls f(T{}) with T the storage type of `dtype` (float, Bf16 or F16), so
// that a loop over a buffer's elements tests the dtype once, not per element.
template <typename F>
void WithStorageType(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kF32:
      f(float{});
      return;
    case DType::kBF16:
      f(Bf16{});
      return;
    case DType::kF16:
      f(F16{});
      return;
  }
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
