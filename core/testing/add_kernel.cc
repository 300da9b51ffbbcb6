#include "core/testing/add_kernel.h"

#include <cstddef>

namespace normgraph {
namespace {

void AddCpu(const AddParams& p) {
  for (int64_t i = 0; i < p.n; ++i) p.dst[i] = p.src[i] + p.add;
}

absl::Status ValidateAdd(const AddParams& p) {
  return p.n >= 0 ? absl::OkStatus() : absl::InvalidArgumentError("negative n");
}

}  // namespace

const KernelDef& AddKernel() {
  static const KernelDef* def = [] {
    auto* d = new KernelDef;
    d->name = "add";
    d->params_size = sizeof(AddParams);
    d->pointer_offsets = {offsetof(AddParams, src), offsetof(AddParams, dst)};
    d->validate = ValidateEntry<AddParams, ValidateAdd>;
    d->cpu_entry = CpuEntry<AddParams, AddCpu>;
#ifdef NORMGRAPH_WITH_CUDA
    d->cuda_plan = PlanAddCuda;
#endif
    return d;
  }();
  return *def;
}

}  // namespace normgraph
