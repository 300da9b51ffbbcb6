// See inv_rms_check.h.

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "core/cuda/cuda_status.h"
#include "kernels/cuda/inv_rms_check.h"
#include "kernels/cuda/rms_norm_kernels.h"

namespace normgraph {
namespace {

__global__ void Evaluate(const double* means, int64_t n, float eps,
                         uint32_t* bits, uint8_t* rsqrt_taken) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    bits[i] = FloatBits(cuda_kernels::InvRmsOfMeanForLatency(means[i], eps));
    rsqrt_taken[i] = numerics::RoundsLikeNeighbours(
        rsqrt(means[i] + static_cast<double>(eps)));
  }
}

// The CUDA call `what`'s result as a status (core/cuda/cuda_status.h).
absl::Status Check(cudaError_t e, const char* what) {
  return CudaStatus(e, what, "inv_rms check");
}

}  // namespace

absl::StatusOr<std::vector<DeviceInvRms>> EvaluateInvRmsForLatency(
    absl::Span<const double> means, float eps) {
  const int64_t n = static_cast<int64_t>(means.size());
  std::vector<DeviceInvRms> results(means.size());
  if (n == 0) return results;
  double* device_means = nullptr;
  uint32_t* device_bits = nullptr;
  uint8_t* device_taken = nullptr;
  absl::Status status =
      Check(cudaMalloc(&device_means, n * sizeof(double)), "cudaMalloc");
  status.Update(
      Check(cudaMalloc(&device_bits, n * sizeof(uint32_t)), "cudaMalloc"));
  status.Update(Check(cudaMalloc(&device_taken, n), "cudaMalloc"));
  if (status.ok()) {
    status.Update(Check(cudaMemcpy(device_means, means.data(),
                                   n * sizeof(double), cudaMemcpyHostToDevice),
                        "cudaMemcpy"));
  }
  if (status.ok()) {
    Evaluate<<<1024, 256>>>(device_means, n, eps, device_bits, device_taken);
    status.Update(Check(cudaGetLastError(), "launch"));
  }
  std::vector<uint32_t> bits(means.size());
  std::vector<uint8_t> taken(means.size());
  if (status.ok()) {
    status.Update(
        Check(cudaMemcpy(bits.data(), device_bits, n * sizeof(uint32_t),
                         cudaMemcpyDeviceToHost),
              "cudaMemcpy"));
  }
  if (status.ok()) {
    status.Update(
        Check(cudaMemcpy(taken.data(), device_taken, n, cudaMemcpyDeviceToHost),
              "cudaMemcpy"));
  }
  // Freed whatever happened above (cudaFree(nullptr) is a no-op).
  status.Update(Check(cudaFree(device_means), "cudaFree"));
  status.Update(Check(cudaFree(device_bits), "cudaFree"));
  status.Update(Check(cudaFree(device_taken), "cudaFree"));
  if (!status.ok()) return status;
  for (int64_t i = 0; i < n; ++i) {
    results[i].bits = bits[i];
    results[i].rsqrt = taken[i] != 0;
  }
  return results;
}

}  // namespace normgraph
