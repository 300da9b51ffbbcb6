#ifndef NORMGRAPH_KERNELS_CUDA_PACKED_ARITHMETIC_CHECK_H_
#define NORMGRAPH_KERNELS_CUDA_PACKED_ARITHMETIC_CHECK_H_

// An exhaustive check, on the GPU, of the packed 16-bit arithmetic the
// register-cached kernels use in place of the shared numerics' float32 path
// (PackedAdd / PackedMul in rms_norm_kernels.h): for every ordered pair (a, b)
// of 16-bit values of one dtype, R(a + b) and R(a * b) computed by the packed
// instructions against the same operations in float32 rounded to the dtype by
// the CPU's conversion (core/float_bits.h). Both halves of a packed word are
// exercised. NaN results match when both are NaNs (the kernels canonicalise
// NaNs before storing).

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/dtype.h"

namespace normgraph {

struct PackedArithmeticMismatches {
  int64_t pairs = 0;  // ordered pairs the GPU checked, each in both halves
  int64_t add = 0;    // halves where the packed sum differs
  int64_t mul = 0;    // halves where the packed product differs
  // One differing pair (a in the low 16 bits, b in the high), if any.
  uint32_t example_add = 0, example_mul = 0;
};

// `dtype` is kBF16 or kF16. Runs on the current CUDA device.
absl::StatusOr<PackedArithmeticMismatches> CountPackedArithmeticMismatches(
    DType dtype);

}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_CUDA_PACKED_ARITHMETIC_CHECK_H_
