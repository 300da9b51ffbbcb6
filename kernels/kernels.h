#ifndef NORMGRAPH_KERNELS_KERNELS_H_
#define NORMGRAPH_KERNELS_KERNELS_H_

// The kernels as the launcher sees them (core/kernel_def.h): parameter layout,
// validation, and the backend entry points. Modules launch these through a
// Stream.

#include "core/kernel_def.h"
#include "kernels/rms_norm_params.h"

namespace normgraph {

// Every norm variant (RmsNormParams).
const KernelDef& RmsNormKernel();
// A byte copy (CopyParams).
const KernelDef& CopyKernel();

}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_KERNELS_H_
