#ifndef NORMGRAPH_AUDIT_DRIVER_API_H_
#define NORMGRAPH_AUDIT_DRIVER_API_H_

// The CUDA driver functions the audit calls, found at run time through
// cudaGetDriverEntryPointByVersion (the library does not link libcuda: it
// runs in any process where the NVIDIA driver is installed, and loads on
// machines where it is not). Each entry point is asked for by the CUDA
// version whose signature is typed here (cudaTypedefs.h), so a newer driver
// hands out the same ABI.

#include <cuda.h>
#include <cudaTypedefs.h>

#include <string>

#include "audit/status.h"

namespace normgraph::audit {

struct DriverApi {
  PFN_cuInit_v2000 cuInit;
  PFN_cuGetErrorName_v6000 cuGetErrorName;
  PFN_cuGetErrorString_v6000 cuGetErrorString;
  PFN_cuCtxGetCurrent_v4000 cuCtxGetCurrent;
  PFN_cuCtxPushCurrent_v4000 cuCtxPushCurrent;
  PFN_cuCtxPopCurrent_v4000 cuCtxPopCurrent;
  PFN_cuGraphGetNodes_v10000 cuGraphGetNodes;
  PFN_cuGraphNodeGetType_v10000 cuGraphNodeGetType;
  PFN_cuGraphKernelNodeGetParams_v12000 cuGraphKernelNodeGetParams;
  PFN_cuGraphMemcpyNodeGetParams_v10000 cuGraphMemcpyNodeGetParams;
  PFN_cuGraphMemsetNodeGetParams_v10000 cuGraphMemsetNodeGetParams;
  PFN_cuGraphChildGraphNodeGetGraph_v10000 cuGraphChildGraphNodeGetGraph;
  PFN_cuKernelGetFunction_v12000 cuKernelGetFunction;
  PFN_cuKernelGetName_v12030 cuKernelGetName;
  PFN_cuKernelGetParamInfo_v12040 cuKernelGetParamInfo;
  PFN_cuFuncGetName_v12030 cuFuncGetName;
  PFN_cuFuncGetParamInfo_v12040 cuFuncGetParamInfo;
  PFN_cuPointerGetAttribute_v4000 cuPointerGetAttribute;
  PFN_cuMemGetAddressRange_v3020 cuMemGetAddressRange;

  // "cuFuncGetName(...) for node 3 failed: CUDA_ERROR_INVALID_HANDLE (invalid
  // resource handle)".
  std::string Describe(CUresult result, const char* call,
                       const std::string& context) const;
  // A CUDA_ERROR status carrying Describe's text.
  Status Error(CUresult result, const char* call,
               const std::string& context) const;
};

// The process's driver API, loaded on the first successful call (cuInit(0)
// included). A failure (no driver, a driver older than CUDA 12.4) is
// returned as CUDA_ERROR and tried again on the next call.
Status LoadDriverApi(const DriverApi** out);

}  // namespace normgraph::audit

// Returns api.Error(...) from the enclosing function unless `call` succeeds.
#define NGAUDIT_CU_RETURN_IF_ERROR(api, call, context)   \
  do {                                                   \
    const CUresult ngaudit_cu_ = (call);                 \
    if (ngaudit_cu_ != CUDA_SUCCESS) {                   \
      return (api).Error(ngaudit_cu_, #call, (context)); \
    }                                                    \
  } while (false)

#endif  // NORMGRAPH_AUDIT_DRIVER_API_H_
