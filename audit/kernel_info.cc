#include "audit/kernel_info.h"

namespace normgraph::audit {
namespace {

// More parameters than any argument buffer can hold: a driver that keeps
// answering past this is not believed.
constexpr size_t kMaxParams = kMaxArgumentBytes;

// Calls `get(index, &offset, &size)` for index 0, 1, ... until it answers
// CUDA_ERROR_INVALID_VALUE.
template <typename GetParamInfo>
Status ReadLayout(const DriverApi& api, GetParamInfo get, const char* call,
                  const std::string& context, std::vector<ParamLayout>* out) {
  for (size_t index = 0;; ++index) {
    if (index > kMaxParams) {
      return Status(NGAUDIT_INTERNAL,
                    std::string(call) + " for " + context +
                        " reports more parameters than fit in an argument "
                        "buffer");
    }
    size_t offset = 0;
    size_t size = 0;
    const CUresult result = get(index, &offset, &size);
    if (result == CUDA_ERROR_INVALID_VALUE) return Status();
    if (result != CUDA_SUCCESS) {
      return api.Error(result, call,
                       context + ", parameter " + std::to_string(index));
    }
    if (offset + size > kMaxArgumentBytes) {
      return Status(NGAUDIT_INTERNAL,
                    std::string(call) + " for " + context + ", parameter " +
                        std::to_string(index) + ": offset " +
                        std::to_string(offset) + " size " +
                        std::to_string(size) +
                        " lies beyond the largest argument buffer");
    }
    out->push_back(ParamLayout{static_cast<uint32_t>(offset),
                               static_cast<uint32_t>(size)});
  }
}

Status DescribeFunction(const DriverApi& api, CUfunction function,
                        const std::string& context, KernelInfo* out) {
  const char* name = nullptr;
  NGAUDIT_CU_RETURN_IF_ERROR(api, api.cuFuncGetName(&name, function), context);
  out->name = name != nullptr ? name : "";
  return ReadLayout(
      api,
      [&](size_t i, size_t* offset, size_t* size) {
        return api.cuFuncGetParamInfo(function, i, offset, size);
      },
      "cuFuncGetParamInfo", context, &out->params);
}

Status DescribeLibraryKernel(const DriverApi& api, CUkernel kernel,
                             const std::string& context, KernelInfo* out) {
  const char* name = nullptr;
  NGAUDIT_CU_RETURN_IF_ERROR(api, api.cuKernelGetName(&name, kernel), context);
  out->name = name != nullptr ? name : "";
  return ReadLayout(
      api,
      [&](size_t i, size_t* offset, size_t* size) {
        return api.cuKernelGetParamInfo(kernel, i, offset, size);
      },
      "cuKernelGetParamInfo", context, &out->params);
}

// cuKernelGetFunction in `context` (the current one if null).
Status FunctionOfKernel(const DriverApi& api, CUkernel kernel,
                        CUcontext node_context, const std::string& context,
                        CUfunction* function) {
  CUcontext current = nullptr;
  NGAUDIT_CU_RETURN_IF_ERROR(api, api.cuCtxGetCurrent(&current), context);
  const bool push = node_context != nullptr && node_context != current;
  if (push) {
    NGAUDIT_CU_RETURN_IF_ERROR(api, api.cuCtxPushCurrent(node_context),
                               context);
  }
  const CUresult result = api.cuKernelGetFunction(function, kernel);
  if (push) {
    CUcontext popped = nullptr;
    NGAUDIT_CU_RETURN_IF_ERROR(api, api.cuCtxPopCurrent(&popped), context);
  }
  if (result != CUDA_SUCCESS) {
    return api.Error(result, "cuKernelGetFunction", context);
  }
  return Status();
}

}  // namespace

Status DescribeKernel(const DriverApi& api,
                      const CUDA_KERNEL_NODE_PARAMS& params,
                      const std::string& context, KernelInfo* out) {
  *out = KernelInfo();
  if (params.func != nullptr) {
    return DescribeFunction(api, params.func, context, out);
  }
  if (params.kern == nullptr) {
    return Status(NGAUDIT_INTERNAL,
                  context + " names neither a function nor a kernel");
  }
  CUfunction function = nullptr;
  const Status found =
      FunctionOfKernel(api, params.kern, params.ctx, context, &function);
  if (found.ok()) return DescribeFunction(api, function, context, out);
  // No context to resolve it in: the kernel itself knows name and layout.
  const Status direct = DescribeLibraryKernel(api, params.kern, context, out);
  if (direct.ok()) return direct;
  return Status(direct.code(), found.message() + "; then " + direct.message());
}

}  // namespace normgraph::audit
