#ifndef NORMGRAPH_FUZZ_VALUES_H_
#define NORMGRAPH_FUZZ_VALUES_H_
// The fuzz harness's own encodings of element values, written apart from
// core/float_bits.h so that a bug there is not mirrored by the harness's
// reference: round to nearest even by integer bit dropping for the common
// cases and by double arithmetic (std::nearbyint) for the rest.

#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace normgraph {
namespace fuzz {

uint32_t FloatToBits(float f);
float BitsToFloat(uint32_t u);

// `f` in `dtype`'s bits, rounded to nearest even (f32: f's own bits). An
// infinity stays one (of f's sign), a finite value too large for the dtype
// becomes one, and a NaN becomes the dtype's quiet NaN (as c10 converts:
// bf16's without the sign, f16's with it).
uint32_t EncodeValue(DType dtype, float f);

// The element at `p` (dtype's bytes, little-endian) as a float (exact; a
// NaN keeps its sign and payload).
float DecodeValue(DType dtype, const uint8_t* p);

// EncodeValue(dtype, f) stored at `p`.
void StoreValue(DType dtype, float f, uint8_t* p);

// A value for a finding: all the digits a float has and its bits, so values
// that differ in their last bits do not print as equal.
std::string ValueText(DType dtype, const uint8_t* p);

}  // namespace fuzz
}  // namespace normgraph

#endif  // NORMGRAPH_FUZZ_VALUES_H_
