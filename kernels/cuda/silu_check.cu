// See silu_check.h.

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "core/cuda/cuda_status.h"
#include "core/float_bits.h"
#include "kernels/cuda/silu.h"
#include "kernels/cuda/silu_check.h"
#include "kernels/norm_numerics.h"

namespace normgraph {
namespace {

struct DeviceCounts {
  unsigned long long mismatches;
  unsigned int first;
};

__global__ void CompareAll(DeviceCounts* counts) {
  unsigned long long local = 0;
  unsigned int first = 0xFFFFFFFFu;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t u =
           blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
       u <= 0xFFFFFFFFull; u += stride) {
    const float g = FloatFromBits(static_cast<uint32_t>(u));
    const float want = __fdiv_rn(g, 1.0f + numerics::ExpF32(-g));
    const float got = cuda_kernels::SiluWithoutBranches(g);
    const bool same =
        FloatBits(got) == FloatBits(want) || (got != got && want != want);
    if (!same) {
      ++local;
      if (static_cast<uint32_t>(u) < first) first = static_cast<uint32_t>(u);
    }
  }
  // Integer counts: the order of these additions cannot change the result.
  if (local != 0) {
    atomicAdd(&counts->mismatches, local);
    atomicMin(&counts->first, first);
  }
}

__global__ void Evaluate(const float* inputs, int64_t n, uint32_t* bits) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    bits[i] = FloatBits(cuda_kernels::SiluWithoutBranches(inputs[i]));
  }
}

// The CUDA call `what`'s result as a status (core/cuda/cuda_status.h).
absl::Status Check(cudaError_t e, const char* what) {
  return CudaStatus(e, what, "silu check");
}

}  // namespace

absl::StatusOr<SiluMismatches> CountSiluMismatches() {
  DeviceCounts* device_counts = nullptr;
  absl::Status status =
      Check(cudaMalloc(&device_counts, sizeof(DeviceCounts)), "cudaMalloc");
  const DeviceCounts initial = {0, 0xFFFFFFFFu};
  if (status.ok()) {
    status.Update(Check(cudaMemcpy(device_counts, &initial, sizeof initial,
                                   cudaMemcpyHostToDevice),
                        "cudaMemcpy"));
  }
  if (status.ok()) {
    CompareAll<<<4096, 256>>>(device_counts);
    status.Update(Check(cudaGetLastError(), "launch"));
  }
  DeviceCounts counts = initial;
  if (status.ok()) {
    status.Update(Check(cudaMemcpy(&counts, device_counts, sizeof counts,
                                   cudaMemcpyDeviceToHost),
                        "cudaMemcpy"));
  }
  status.Update(Check(cudaFree(device_counts), "cudaFree"));
  if (!status.ok()) return status;
  SiluMismatches m;
  m.inputs = int64_t{1} << 32;
  m.mismatches = static_cast<int64_t>(counts.mismatches);
  m.first = counts.mismatches != 0 ? counts.first : 0;
  return m;
}

absl::StatusOr<std::vector<uint32_t>> EvaluateSiluWithoutBranches(
    absl::Span<const float> inputs) {
  const int64_t n = static_cast<int64_t>(inputs.size());
  std::vector<uint32_t> bits(inputs.size());
  if (n == 0) return bits;
  float* device_inputs = nullptr;
  uint32_t* device_bits = nullptr;
  absl::Status status =
      Check(cudaMalloc(&device_inputs, n * sizeof(float)), "cudaMalloc");
  status.Update(
      Check(cudaMalloc(&device_bits, n * sizeof(uint32_t)), "cudaMalloc"));
  if (status.ok()) {
    status.Update(Check(cudaMemcpy(device_inputs, inputs.data(),
                                   n * sizeof(float), cudaMemcpyHostToDevice),
                        "cudaMemcpy"));
  }
  if (status.ok()) {
    Evaluate<<<1024, 256>>>(device_inputs, n, device_bits);
    status.Update(Check(cudaGetLastError(), "launch"));
  }
  if (status.ok()) {
    status.Update(
        Check(cudaMemcpy(bits.data(), device_bits, n * sizeof(uint32_t),
                         cudaMemcpyDeviceToHost),
              "cudaMemcpy"));
  }
  // Freed whatever happened above (cudaFree(nullptr) is a no-op).
  status.Update(Check(cudaFree(device_inputs), "cudaFree"));
  status.Update(Check(cudaFree(device_bits), "cudaFree"));
  if (!status.ok()) return status;
  return bits;
}

}  // namespace normgraph
