#include "tools/cuda/cuda_smoke_test.h"

namespace normgraph::cuda_smoke {
namespace {

__global__ void Axpy(AxpyParams p) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < p.n) p.y[i] = p.a * p.x[i] + p.y[i];
}

}  // namespace

cudaError_t LaunchAxpy(const AxpyParams& params, cudaStream_t stream) {
  constexpr int kThreads = 256;
  Axpy<<<(params.n + kThreads - 1) / kThreads, kThreads, 0, stream>>>(params);
  return cudaGetLastError();
}

const void* AxpyKernel() { return reinterpret_cast<const void*>(&Axpy); }

}  // namespace normgraph::cuda_smoke
