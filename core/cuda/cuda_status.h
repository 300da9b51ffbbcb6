#ifndef NORMGRAPH_CORE_CUDA_CUDA_STATUS_H_
#define NORMGRAPH_CORE_CUDA_CUDA_STATUS_H_

// Every CUDA runtime call's return code becomes an absl::Status that names the
// call and what it was for:
//   "cudaMalloc(&ptr, rounded) for 'cuda:0 allocator, 8192 B' failed:
//    cudaErrorMemoryAllocation (out of memory)".

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace normgraph {

// OK for cudaSuccess; otherwise an error whose code follows the CUDA error
// (out of memory -> RESOURCE_EXHAUSTED, capture misuse -> FAILED_PRECONDITION,
// bad arguments -> INVALID_ARGUMENT, anything else -> INTERNAL).
absl::Status CudaStatus(cudaError_t error, absl::string_view call,
                        absl::string_view context);

}  // namespace normgraph

// Returns from the enclosing function if `call` does not return cudaSuccess.
// `context` (anything absl::StrCat takes) says what the call was for.
#define NG_CUDA_RETURN_IF_ERROR(call, context)                        \
  do {                                                                \
    const cudaError_t ng_cuda_error_ = (call);                        \
    if (ng_cuda_error_ != cudaSuccess) {                              \
      return ::normgraph::CudaStatus(ng_cuda_error_, #call, context); \
    }                                                                 \
  } while (false)

#endif  // NORMGRAPH_CORE_CUDA_CUDA_STATUS_H_
