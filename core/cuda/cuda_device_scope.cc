#include "core/cuda/cuda_device_scope.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "core/cuda/cuda_status.h"

namespace normgraph {

absl::StatusOr<CudaDeviceScope> CudaDeviceScope::Enter(
    int index, absl::string_view context) {
  int current = -1;
  NG_CUDA_RETURN_IF_ERROR(cudaGetDevice(&current), context);
  if (current == index) return CudaDeviceScope(-1);
  NG_CUDA_RETURN_IF_ERROR(cudaSetDevice(index), context);
  return CudaDeviceScope(current);
}

CudaDeviceScope::~CudaDeviceScope() {
  if (previous_ >= 0 && cudaSetDevice(previous_) != cudaSuccess) {
    cudaGetLastError();  // not sticky: cleared, so no later check reports it
  }
}

}  // namespace normgraph
