#include "audit/pointer_probe.h"

#include <cuda.h>

namespace normgraph::audit {
namespace {

constexpr uint64_t kLowestAddress = uint64_t{1} << 16;
constexpr uint64_t kAddressLimit = uint64_t{1} << 57;

std::string Hex(uint64_t value) {
  static const char kDigits[] = "0123456789abcdef";
  std::string text;
  do {
    text.insert(text.begin(), kDigits[value & 15]);
    value >>= 4;
  } while (value != 0);
  return "0x" + text;
}

}  // namespace

Status PointerProbe::Probe(uint64_t value, PointerInfo* out) {
  *out = PointerInfo();
  if (value < kLowestAddress || value >= kAddressLimit) return Status();
  const auto cached = cache_.find(value);
  if (cached != cache_.end()) {
    *out = cached->second;
    return Status();
  }
  PointerInfo info;
  unsigned int memory_type = 0;
  const CUresult attribute =
      api_.cuPointerGetAttribute(&memory_type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                 static_cast<CUdeviceptr>(value));
  if (attribute == CUDA_SUCCESS) {
    info.known = true;
    info.memory_type = memory_type;
    if (memory_type != CU_MEMORYTYPE_HOST) {
      CUdeviceptr base = 0;
      size_t bytes = 0;
      const CUresult range = api_.cuMemGetAddressRange(
          &base, &bytes, static_cast<CUdeviceptr>(value));
      if (range == CUDA_SUCCESS) {
        info.allocation_base = base;
        info.allocation_bytes = bytes;
      } else if (range != CUDA_ERROR_INVALID_VALUE &&
                 range != CUDA_ERROR_NOT_FOUND) {
        return api_.Error(range, "cuMemGetAddressRange", Hex(value));
      }
    }
  } else if (attribute != CUDA_ERROR_INVALID_VALUE) {
    return api_.Error(attribute,
                      "cuPointerGetAttribute(CU_POINTER_ATTRIBUTE_MEMORY_TYPE)",
                      Hex(value));
  }
  cache_.emplace(value, info);
  *out = info;
  return Status();
}

}  // namespace normgraph::audit
