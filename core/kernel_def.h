#ifndef NORMGRAPH_CORE_KERNEL_DEF_H_
#define NORMGRAPH_CORE_KERNEL_DEF_H_

// KernelDef: what the launcher knows about a kernel. A kernel takes one
// trivially copyable parameter struct; the def lists the byte offset of every
// pointer field in it, so the launcher can insist that each non-null pointer a
// node holds is bound to a tensor (an address nobody owns is an error, not a
// silent risk) and can re-point a node at new storage (rebind).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"

namespace normgraph {

// How the CUDA backend launches a kernel: the __global__ function (its
// host-side handle) and the launch shape. Filled in by the kernel's CUDA plan
// function (kernels/cuda), so core/ stays free of CUDA headers.
struct CudaLaunch {
  const void* function = nullptr;
  uint32_t grid[3] = {1, 1, 1};
  uint32_t block[3] = {1, 1, 1};
  uint32_t shared_bytes = 0;
  // Launch with programmatic stream serialization (programmatic dependent
  // launch): the kernel may start before the previous kernel on the stream has
  // finished, so it must wait for it (griddepcontrol.wait) before touching
  // memory. Captured into the graph node as a programmatic edge.
  bool programmatic_dependency = false;
  // CTAs per thread-block cluster along x (grid[0] a multiple of it; sm_90 and
  // later), or 1: no cluster.
  uint32_t cluster = 1;

  bool operator==(const CudaLaunch& o) const {
    return function == o.function && grid[0] == o.grid[0] &&
           grid[1] == o.grid[1] && grid[2] == o.grid[2] &&
           block[0] == o.block[0] && block[1] == o.block[1] &&
           block[2] == o.block[2] && shared_bytes == o.shared_bytes &&
           programmatic_dependency == o.programmatic_dependency &&
           cluster == o.cluster;
  }
  bool operator!=(const CudaLaunch& o) const { return !(*this == o); }
};

struct KernelDef {
  const char* name = "";
  size_t params_size = 0;
  absl::InlinedVector<uint16_t, 8> pointer_offsets;
  // Checks a params struct before any launch (eager or captured); kernels
  // assume valid params.
  absl::Status (*validate)(const void* params) = nullptr;
  // For valid params: how many bytes from the address in pointer field
  // `index` (pointer_offsets order) the kernel may read or write. The launcher
  // checks that the tensor bound to the field spans at least that much. Null:
  // not checked.
  size_t (*arg_bytes)(const void* params, size_t index) = nullptr;
  // Runs the kernel on the CPU. The params pointer may be unaligned.
  void (*cpu_entry)(const void* params) = nullptr;
  // Chooses the CUDA function and launch shape for valid `params`; null if the
  // kernel has no CUDA implementation (or the binary was built without CUDA).
  // The choice may depend on sizes and dtypes but never on pointer values:
  // rebinding a captured node changes only pointers and keeps its function and
  // shape (the CUDA backend checks this).
  void (*cuda_plan)(const void* params, CudaLaunch* launch) = nullptr;
};

// Adapts `void Fn(const Params&)` to KernelDef::cpu_entry (copies params to an
// aligned local).
template <typename Params, void (*Fn)(const Params&)>
void CpuEntry(const void* raw) {
  static_assert(std::is_trivially_copyable<Params>::value,
                "kernel params must be POD");
  Params p;
  std::memcpy(&p, raw, sizeof p);
  Fn(p);
}

// Adapts `size_t Fn(const Params&, size_t)` to KernelDef::arg_bytes.
template <typename Params, size_t (*Fn)(const Params&, size_t)>
size_t ArgBytesEntry(const void* raw, size_t index) {
  Params p;
  std::memcpy(&p, raw, sizeof p);
  return Fn(p, index);
}

// Adapts `absl::Status Fn(const Params&)` to KernelDef::validate.
template <typename Params, absl::Status (*Fn)(const Params&)>
absl::Status ValidateEntry(const void* raw) {
  Params p;
  std::memcpy(&p, raw, sizeof p);
  return Fn(p);
}

// How a kernel uses a tensor argument.
enum class Access : uint8_t { kRead, kWrite, kReadWrite };

inline bool Writes(Access a) { return a != Access::kRead; }

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_KERNEL_DEF_H_
