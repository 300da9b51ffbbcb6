#include <cstring>

#include "core/testing/add_kernel.h"

namespace normgraph {
namespace {

__global__ void AddKernelCuda(const AddParams p) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < p.n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    p.dst[i] = p.src[i] + p.add;
  }
}

}  // namespace

void PlanAddCuda(const void* raw, CudaLaunch* launch) {
  AddParams p;
  std::memcpy(&p, raw, sizeof p);
  *launch = CudaLaunch{};
  launch->function = reinterpret_cast<const void*>(&AddKernelCuda);
  launch->grid[0] =
      static_cast<uint32_t>(p.n / 256 + 1 < 1024 ? p.n / 256 + 1 : 1024);
  launch->block[0] = 256;
}

}  // namespace normgraph
