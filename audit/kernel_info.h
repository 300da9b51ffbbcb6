#ifndef NORMGRAPH_AUDIT_KERNEL_INFO_H_
#define NORMGRAPH_AUDIT_KERNEL_INFO_H_

// The name and parameter layout of the kernel a graph kernel node launches.
//
// A node names its kernel either by CUfunction (`func`) or, for kernels of a
// library loaded with the context-independent API (what the CUDA runtime
// does since CUDA 12), by CUkernel (`kern`, with `func` null). A CUkernel is
// turned into the function of the node's context (cuKernelGetFunction, with
// the node's context made current for the call if another is); where that
// fails, the CUkernel is asked directly (cuKernelGetName,
// cuKernelGetParamInfo). Parameters are read with cuFuncGetParamInfo for
// index 0, 1, ... until the driver answers CUDA_ERROR_INVALID_VALUE (no such
// parameter).

#include <cuda.h>

#include <string>
#include <vector>

#include "audit/argument_words.h"
#include "audit/driver_api.h"
#include "audit/status.h"

namespace normgraph::audit {

struct KernelInfo {
  std::string name;  // mangled, as the driver gives it
  std::vector<ParamLayout> params;
};

// `context` says which node, for messages.
Status DescribeKernel(const DriverApi& api,
                      const CUDA_KERNEL_NODE_PARAMS& params,
                      const std::string& context, KernelInfo* out);

}  // namespace normgraph::audit

#endif  // NORMGRAPH_AUDIT_KERNEL_INFO_H_
