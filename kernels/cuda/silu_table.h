#ifndef NORMGRAPH_KERNELS_CUDA_SILU_TABLE_H_
#define NORMGRAPH_KERNELS_CUDA_SILU_TABLE_H_

// silu(g) of bfloat16 gates by table: the gated prefill kernels' silu
// (numerics::Silu, about 30 instructions an element on the GPU, silu.h) was
// what bound them (H200, gated bf16 32768 x 4096: 52.7 instructions an
// element, issue slots 71% busy, DRAM 54%; benchmarks/RESULTS.md). A bf16 gate
// has 2^16 values, and every one whose magnitude lies in
// [2^-24, 2^8) is in a table of 8192 float32 results (32 KiB: both signs, 32
// exponents, 128 mantissas) that those kernels copy into shared memory; the
// rest (zeros, subnormals, |g| >= 256, infinities, NaNs) are computed as
// before. The table is generated at build time by silu_table_gen with
// numerics::Silu, whose bits the GPU's branch-free silu equals for every
// float32 input (silu_test checks both that and this table).
//
// Host and device: the index is plain arithmetic on the bits.

#include <cstdint>

#include "core/float_bits.h"  // NG_HOST_DEVICE

namespace normgraph {
namespace silu_table {

// The table's first exponent field (2^(103 - 127) = 2^-24) and size.
constexpr uint32_t kFirstExponent = 103;
constexpr uint32_t kExponents = 32;
constexpr uint32_t kEntries = 2 * kExponents * 128;  // 8192
constexpr uint32_t kBytes = kEntries * 4;

// The entry of the bf16 value with encoding `bits` (16 bits), or kEntries
// when the table does not hold it: magnitude bits minus the first exponent's
// (an unsigned compare rejects both sides of the window), the sign above.
NG_HOST_DEVICE uint32_t IndexOfBf16(uint32_t bits) {
  const uint32_t magnitude = (bits & 0x7FFFu) - (kFirstExponent << 7);
  if (magnitude >= kExponents * 128) return kEntries;
  return magnitude | ((bits >> 3) & 0x1000u);
}

// The bf16 encoding entry `index` holds silu of (the inverse of IndexOfBf16).
NG_HOST_DEVICE uint32_t Bf16OfIndex(uint32_t index) {
  return ((index & 0x1000u) << 3) | ((index & 0x0FFFu) + (kFirstExponent << 7));
}

}  // namespace silu_table
}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_CUDA_SILU_TABLE_H_
