#include "audit/driver_api.h"

#include <cuda_runtime.h>

#include <mutex>

namespace normgraph::audit {
namespace {

// Looks up `symbol` as of CUDA `version` into `*fn`.
template <typename Fn>
Status Find(const char* symbol, unsigned int version, Fn* fn) {
  void* address = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  const cudaError_t error = cudaGetDriverEntryPointByVersion(
      symbol, &address, version, cudaEnableDefault, &found);
  const std::string call = std::string("cudaGetDriverEntryPointByVersion(\"") +
                           symbol + "\", " + std::to_string(version) + ")";
  if (error != cudaSuccess) {
    return Status(NGAUDIT_CUDA_ERROR,
                  call + " failed: " + cudaGetErrorName(error) + " (" +
                      cudaGetErrorString(error) +
                      "); is the NVIDIA driver installed?");
  }
  if (found != cudaDriverEntryPointSuccess || address == nullptr) {
    return Status(NGAUDIT_CUDA_ERROR,
                  call + ": " +
                      (found == cudaDriverEntryPointVersionNotSufficent
                           ? "the driver is older than that CUDA version"
                           : "the driver has no such function"));
  }
  *fn = reinterpret_cast<Fn>(address);
  return Status();
}

Status Load(DriverApi* api) {
  NGAUDIT_RETURN_IF_ERROR(Find("cuInit", 2000, &api->cuInit));
  NGAUDIT_RETURN_IF_ERROR(Find("cuGetErrorName", 6000, &api->cuGetErrorName));
  NGAUDIT_RETURN_IF_ERROR(
      Find("cuGetErrorString", 6000, &api->cuGetErrorString));
  NGAUDIT_RETURN_IF_ERROR(Find("cuCtxGetCurrent", 4000, &api->cuCtxGetCurrent));
  NGAUDIT_RETURN_IF_ERROR(
      Find("cuCtxPushCurrent", 4000, &api->cuCtxPushCurrent));
  NGAUDIT_RETURN_IF_ERROR(Find("cuCtxPopCurrent", 4000, &api->cuCtxPopCurrent));
  NGAUDIT_RETURN_IF_ERROR(
      Find("cuGraphGetNodes", 10000, &api->cuGraphGetNodes));
  NGAUDIT_RETURN_IF_ERROR(
      Find("cuGraphNodeGetType", 10000, &api->cuGraphNodeGetType));
  NGAUDIT_RETURN_IF_ERROR(Find("cuGraphKernelNodeGetParams", 12000,
                               &api->cuGraphKernelNodeGetParams));
  NGAUDIT_RETURN_IF_ERROR(Find("cuGraphMemcpyNodeGetParams", 10000,
                               &api->cuGraphMemcpyNodeGetParams));
  NGAUDIT_RETURN_IF_ERROR(Find("cuGraphMemsetNodeGetParams", 10000,
                               &api->cuGraphMemsetNodeGetParams));
  NGAUDIT_RETURN_IF_ERROR(Find("cuGraphChildGraphNodeGetGraph", 10000,
                               &api->cuGraphChildGraphNodeGetGraph));
  NGAUDIT_RETURN_IF_ERROR(
      Find("cuKernelGetFunction", 12000, &api->cuKernelGetFunction));
  NGAUDIT_RETURN_IF_ERROR(
      Find("cuKernelGetName", 12030, &api->cuKernelGetName));
  NGAUDIT_RETURN_IF_ERROR(
      Find("cuKernelGetParamInfo", 12040, &api->cuKernelGetParamInfo));
  NGAUDIT_RETURN_IF_ERROR(Find("cuFuncGetName", 12030, &api->cuFuncGetName));
  NGAUDIT_RETURN_IF_ERROR(
      Find("cuFuncGetParamInfo", 12040, &api->cuFuncGetParamInfo));
  NGAUDIT_RETURN_IF_ERROR(
      Find("cuPointerGetAttribute", 4000, &api->cuPointerGetAttribute));
  NGAUDIT_RETURN_IF_ERROR(
      Find("cuMemGetAddressRange", 3020, &api->cuMemGetAddressRange));
  NGAUDIT_CU_RETURN_IF_ERROR(*api, api->cuInit(0), "loading the driver API");
  return Status();
}

}  // namespace

std::string DriverApi::Describe(CUresult result, const char* call,
                                const std::string& context) const {
  const char* name = nullptr;
  const char* text = nullptr;
  if (cuGetErrorName == nullptr ||
      cuGetErrorName(result, &name) != CUDA_SUCCESS || name == nullptr) {
    name = "unknown CUresult";
  }
  if (cuGetErrorString == nullptr ||
      cuGetErrorString(result, &text) != CUDA_SUCCESS || text == nullptr) {
    text = "no description";
  }
  std::string message = std::string(call);
  if (!context.empty()) message += " for " + context;
  return message + " failed: " + name + " (" + std::to_string(result) + ", " +
         text + ")";
}

Status DriverApi::Error(CUresult result, const char* call,
                        const std::string& context) const {
  return Status(NGAUDIT_CUDA_ERROR, Describe(result, call, context));
}

Status LoadDriverApi(const DriverApi** out) {
  static std::mutex mutex;
  static DriverApi api;
  static bool loaded = false;
  std::lock_guard<std::mutex> lock(mutex);
  if (!loaded) {
    DriverApi candidate{};
    NGAUDIT_RETURN_IF_ERROR(Load(&candidate));
    api = candidate;
    loaded = true;
  }
  *out = &api;
  return Status();
}

}  // namespace normgraph::audit
