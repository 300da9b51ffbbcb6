#ifndef NORMGRAPH_CORE_TESTING_ADD_KERNEL_H_
#define NORMGRAPH_CORE_TESTING_ADD_KERNEL_H_

// A tiny test kernel for the launcher's own tests, on every backend:
// dst[i] = src[i] + add over f32. Its CUDA implementation is linked in under
// --config=cuda.

#include <cstdint>

#include "absl/status/status.h"
#include "core/kernel_def.h"

namespace normgraph {

struct AddParams {
  const float* src;
  float* dst;
  int64_t n;
  float add;
};

// Validation refuses n < 0 ("negative n").
const KernelDef& AddKernel();

// The CUDA plan (add_kernel.cu).
void PlanAddCuda(const void* params, CudaLaunch* launch);

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_TESTING_ADD_KERNEL_H_
