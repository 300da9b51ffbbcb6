#ifndef NORMGRAPH_KERNELS_CUDA_KERNELS_CUDA_H_
#define NORMGRAPH_KERNELS_CUDA_KERNELS_CUDA_H_

// The CUDA implementations of the kernels of kernels/kernels.h, as the
// launcher sees them: for valid params, which __global__ function to launch
// and with what shape (core/kernel_def.h). The kernels follow the numerics of
// kernels/norm_numerics.h, so they agree with the CPU reference bit for bit.

#include "core/kernel_def.h"

namespace normgraph {

// RmsNormParams (kernels/rms_norm_params.h).
void PlanRmsNormCuda(const void* params, CudaLaunch* launch);
// CopyParams.
void PlanCopyCuda(const void* params, CudaLaunch* launch);

}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_CUDA_KERNELS_CUDA_H_
