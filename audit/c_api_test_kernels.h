#ifndef NORMGRAPH_AUDIT_C_API_TEST_KERNELS_H_
#define NORMGRAPH_AUDIT_C_API_TEST_KERNELS_H_

// A kernel for the C ABI test whose arguments hold pointers the way library
// kernels do: as plain parameters and inside a struct parameter, between
// integers and floats.

#include <cuda_runtime.h>

namespace normgraph::audit::testing {

struct PointerPair {
  const float* a;  // registered by the test
  long long n;
  float* b;  // left unregistered
};

// out[i] = alpha * w[i] + pair.a[i]; pair.b[i] = out[i], for i < n.
cudaError_t LaunchAuditTestKernel(const float* w, float* out, int n,
                                  PointerPair pair, float alpha,
                                  cudaStream_t stream);

// The kernel's mangled name contains this.
inline constexpr const char* kAuditTestKernelName = "audit_test_kernel";

}  // namespace normgraph::audit::testing

#endif  // NORMGRAPH_AUDIT_C_API_TEST_KERNELS_H_
