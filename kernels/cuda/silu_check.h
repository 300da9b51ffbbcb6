#ifndef NORMGRAPH_KERNELS_CUDA_SILU_CHECK_H_
#define NORMGRAPH_KERNELS_CUDA_SILU_CHECK_H_

// The gated kernels' branch-free silu (silu.h) on the GPU: compared there with
// the IEEE-division form of numerics::Silu for every float32 input, and
// evaluated for inputs the caller chooses, so a test can compare it with the
// CPU's numerics::Silu too.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace normgraph {

struct SiluMismatches {
  int64_t inputs = 0;      // float32 bit patterns checked
  int64_t mismatches = 0;  // where the bits differ (two NaNs match)
  uint32_t first = 0;      // the smallest differing input's bits, if any
};

// SiluWithoutBranches(g) against g / (1 + numerics::ExpF32(-g)) with CUDA's
// correctly rounded division, for all 2^32 bit patterns g, on the current
// CUDA device.
absl::StatusOr<SiluMismatches> CountSiluMismatches();

// The bits of SiluWithoutBranches(g) for each g, on the current CUDA device.
absl::StatusOr<std::vector<uint32_t>> EvaluateSiluWithoutBranches(
    absl::Span<const float> inputs);

}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_CUDA_SILU_CHECK_H_
