// The row-norm kernels with f32 activations (rms_norm_kernels.h).

#include "kernels/cuda/rms_norm_kernels.h"

namespace normgraph {

const void* SelectRmsNormF32(DType w, DType o, int64_t k, int form) {
  return cuda_kernels::SelectForActivation<DType::kF32>(w, o, k, form);
}

}  // namespace normgraph
