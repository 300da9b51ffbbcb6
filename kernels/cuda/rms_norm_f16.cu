// The row-norm kernels with f16 activations (rms_norm_kernels.h).

#include "kernels/cuda/rms_norm_kernels.h"

namespace normgraph {

const void* SelectRmsNormF16(DType w, DType o, int64_t k, int form) {
  return cuda_kernels::SelectForActivation<DType::kF16>(w, o, k, form);
}

}  // namespace normgraph
