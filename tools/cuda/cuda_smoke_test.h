// A tiny kernel for tools/cuda's toolchain smoke test (cuda_smoke_test.cc).
#ifndef NORMGRAPH_TOOLS_CUDA_CUDA_SMOKE_TEST_H_
#define NORMGRAPH_TOOLS_CUDA_CUDA_SMOKE_TEST_H_

#include <cuda_runtime.h>

namespace normgraph::cuda_smoke {

// The kernel's single parameter, passed by value (a POD struct, as the real
// kernels take).
struct AxpyParams {
  const float* x;
  float* y;
  float a;
  int n;
};

// Enqueues y[i] = a * x[i] + y[i] on `stream`; returns cudaGetLastError().
cudaError_t LaunchAxpy(const AxpyParams& params, cudaStream_t stream);

// The kernel's host-side handle (what a graph's kernel node reports as its
// function).
const void* AxpyKernel();

}  // namespace normgraph::cuda_smoke

#endif  // NORMGRAPH_TOOLS_CUDA_CUDA_SMOKE_TEST_H_
