#ifndef NORMGRAPH_KERNELS_CUDA_INV_RMS_CHECK_H_
#define NORMGRAPH_KERNELS_CUDA_INV_RMS_CHECK_H_

// The decode kernels' 1 / rms (InvRmsOfMeanForLatency in rms_norm_kernels.h:
// rsqrt where rounding cannot tell it from the exact float64 chain, the chain
// elsewhere), evaluated on the GPU for means the caller chooses, so a test
// can compare its bits with the CPU's exact chain (numerics::InvRmsOfMean)
// on means made to sit next to float32 rounding midpoints.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace normgraph {

struct DeviceInvRms {
  uint32_t bits = 0;   // the float32 result's bits
  bool rsqrt = false;  // whether the rsqrt shortcut gave it
};

// InvRmsOfMeanForLatency(means[i], eps) for every i, on the current CUDA
// device.
absl::StatusOr<std::vector<DeviceInvRms>> EvaluateInvRmsForLatency(
    absl::Span<const double> means, float eps);

}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_CUDA_INV_RMS_CHECK_H_
