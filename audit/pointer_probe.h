#ifndef NORMGRAPH_AUDIT_POINTER_PROBE_H_
#define NORMGRAPH_AUDIT_POINTER_PROBE_H_

// Does a word read from a graph node look like an address CUDA knows?
//
// The driver decides: cuPointerGetAttribute(CU_POINTER_ATTRIBUTE_MEMORY_TYPE)
// succeeds for any address inside memory CUDA allocated or registered
// (device, host-pinned, managed), and answers CUDA_ERROR_INVALID_VALUE for
// anything else. For a known address not in host memory,
// cuMemGetAddressRange gives the allocation it lies in, where the driver has
// one. Words that cannot be user
// addresses (below 64 KiB, or at or above 2^57) are not asked about. Answers
// are cached per value for the life of the probe (one scan).

#include <cstdint>
#include <string>
#include <unordered_map>

#include "audit/driver_api.h"
#include "audit/status.h"

namespace normgraph::audit {

struct PointerInfo {
  bool known = false;            // an address the driver knows
  uint32_t memory_type = 0;      // CUmemorytype, if known
  uint64_t allocation_base = 0;  // 0 when the driver gives no range
  uint64_t allocation_bytes = 0;
};

class PointerProbe {
 public:
  explicit PointerProbe(const DriverApi& api) : api_(api) {}

  // CUDA_ERROR for a driver error other than "not an address it knows".
  Status Probe(uint64_t value, PointerInfo* out);

 private:
  const DriverApi& api_;
  std::unordered_map<uint64_t, PointerInfo> cache_;
};

}  // namespace normgraph::audit

#endif  // NORMGRAPH_AUDIT_POINTER_PROBE_H_
