#ifndef NORMGRAPH_CORE_CUDA_CUDA_LAUNCH_H_
#define NORMGRAPH_CORE_CUDA_CUDA_LAUNCH_H_

// Launching a kernel's CUDA plan (core/kernel_def.h): the one place that turns
// a CudaLaunch into cudaLaunchKernelEx, so that every caller (CudaStream, the
// benchmarks) honours all of the plan. A plan may split rows over a
// thread-block cluster, and its kernel then relies on the cluster: launched
// without it, the kernel refuses to run (kernels/cuda/rms_norm_kernels.h).

#include <cuda_runtime.h>

#include "core/kernel_def.h"

namespace normgraph {

// cudaLaunchKernelEx of `plan.function` with the plan's grid, block, dynamic
// shared memory, cluster dimension and, if the plan asks for it, programmatic
// stream serialization (programmatic dependent launch). `args` are the
// kernel's arguments, as for cudaLaunchKernel. Captured into a graph, the
// cluster and programmatic serialization become the node's attributes,
// which cudaGraphExecKernelNodeSetParams keeps.
cudaError_t LaunchCudaPlan(const CudaLaunch& plan, void** args,
                           cudaStream_t stream);

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_CUDA_CUDA_LAUNCH_H_
