#include "audit/c_api_test_kernels.h"

namespace normgraph::audit::testing {

__global__ void audit_test_kernel(const float* w, float* out, int n,
                                  PointerPair pair, float alpha) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n && i < pair.n) {
    out[i] = alpha * w[i] + pair.a[i];
    pair.b[i] = out[i];
  }
}

cudaError_t LaunchAuditTestKernel(const float* w, float* out, int n,
                                  PointerPair pair, float alpha,
                                  cudaStream_t stream) {
  audit_test_kernel<<<(n + 127) / 128, 128, 0, stream>>>(w, out, n, pair,
                                                         alpha);
  return cudaGetLastError();
}

}  // namespace normgraph::audit::testing
