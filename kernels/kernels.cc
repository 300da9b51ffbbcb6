#include "kernels/kernels.h"

#include <cstddef>

#include "kernels/cpu/rms_norm.h"
#ifdef NORMGRAPH_WITH_CUDA
#include "kernels/cuda/kernels_cuda.h"
#endif

namespace normgraph {

const KernelDef& RmsNormKernel() {
  static const KernelDef* def = [] {
    auto* d = new KernelDef;
    d->name = "rms_norm";
    d->params_size = sizeof(RmsNormParams);
    d->pointer_offsets = {
        offsetof(RmsNormParams, x), offsetof(RmsNormParams, weight),
        offsetof(RmsNormParams, gate), offsetof(RmsNormParams, residual),
        offsetof(RmsNormParams, out)};
    d->validate = ValidateEntry<RmsNormParams, ValidateRmsNormParams>;
    d->arg_bytes = ArgBytesEntry<RmsNormParams, RmsNormArgBytes>;
    d->cpu_entry = CpuEntry<RmsNormParams, RmsNormCpu>;
#ifdef NORMGRAPH_WITH_CUDA
    d->cuda_plan = PlanRmsNormCuda;
#endif
    return d;
  }();
  return *def;
}

const KernelDef& CopyKernel() {
  static const KernelDef* def = [] {
    auto* d = new KernelDef;
    d->name = "copy";
    d->params_size = sizeof(CopyParams);
    d->pointer_offsets = {offsetof(CopyParams, src), offsetof(CopyParams, dst)};
    d->validate = ValidateEntry<CopyParams, ValidateCopyParams>;
    d->arg_bytes = ArgBytesEntry<CopyParams, CopyArgBytes>;
    d->cpu_entry = CpuEntry<CopyParams, CopyCpu>;
#ifdef NORMGRAPH_WITH_CUDA
    d->cuda_plan = PlanCopyCuda;
#endif
    return d;
  }();
  return *def;
}

}  // namespace normgraph
