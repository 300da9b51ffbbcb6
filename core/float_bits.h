#ifndef NORMGRAPH_CORE_FLOAT_BITS_H_
#define NORMGRAPH_CORE_FLOAT_BITS_H_

// Bit-exact conversions between float32 and the two 16-bit float formats,
// usable from host code and from CUDA device code alike (so the CPU reference
// kernels and the CUDA kernels round identically, bit for bit).
//
// - bf16 <- f32: round to nearest even; every NaN becomes the canonical quiet
//   NaN 0x7FC0 (as c10::BFloat16 does); values past the largest finite bf16
//   round to infinity.
// - f16 <- f32: round to nearest even, with f16 subnormals; NaN becomes
//   sign | 0x7E00 (as c10::Half does); values at or past 65520 round to
//   infinity.
// - f32 <- bf16 / f16: exact (every bf16 and f16 value is a float); NaN
//   payloads are kept.
// Integer arithmetic only, so the results do not depend on the floating-point
// environment (flush-to-zero, rounding mode) or on compiler support for
// _Float16 / __bf16. This header includes nothing but <cstdint>/<cstring> so
// that nvcc compiles it into device code.

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define NG_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define NG_HOST_DEVICE inline
#endif

namespace normgraph {

NG_HOST_DEVICE uint32_t FloatBits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

NG_HOST_DEVICE uint64_t DoubleBits(double d) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(d));
#else
  uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
#endif
}

NG_HOST_DEVICE float FloatFromBits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

NG_HOST_DEVICE float Bf16BitsToFloat(uint16_t bits) {
  return FloatFromBits(static_cast<uint32_t>(bits) << 16);
}

NG_HOST_DEVICE uint16_t FloatToBf16Bits(float f) {
  const uint32_t u = FloatBits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;  // NaN
  // Round to nearest even: add 0x7FFF plus the lowest kept bit, then truncate.
  // A carry out of the mantissa correctly bumps the exponent, up to infinity.
  const uint32_t lsb = (u >> 16) & 1u;
  return static_cast<uint16_t>((u + 0x7FFFu + lsb) >> 16);
}

NG_HOST_DEVICE float F16BitsToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1Fu;
  const uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0x1F) {
    // Infinity or NaN; the payload moves to the top of f32's mantissa.
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

NG_HOST_DEVICE uint16_t FloatToF16Bits(float f) {
  const uint32_t u = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t magnitude = u & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return sign | 0x7E00u;  // NaN
  // 65520 = 0x477FF000 is the midpoint between the largest finite f16 (65504,
  // odd mantissa) and 2^16: it and everything above round to infinity.
  if (magnitude >= 0x477FF000u) return sign | 0x7C00u;
  if (magnitude < 0x38800000u) {
    // Below 2^-14, the smallest normal f16: subnormal or zero. 2^-25
    // (0x33000000) is the tie between zero and the smallest subnormal; it
    // rounds to zero.
    if (magnitude <= 0x33000000u) return sign;
    const uint32_t exponent = magnitude >> 23;  // 102 .. 112
    const uint32_t mantissa = (magnitude & 0x7FFFFFu) | 0x800000u;
    // value / 2^-24 = mantissa * 2^(exponent - 126)
    const uint32_t shift = 126 - exponent;  // 14 .. 24
    uint32_t q = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    // Round to nearest even; may carry into the smallest normal.
    if (rest > half || (rest == half && (q & 1u))) ++q;
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

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_FLOAT_BITS_H_
