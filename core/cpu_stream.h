#ifndef NORMGRAPH_CORE_CPU_STREAM_H_
#define NORMGRAPH_CORE_CPU_STREAM_H_

// The CPU backend: launches run at once; captured graphs replay the recorded
// launches with the raw addresses they hold, which reproduces CUDA graphs'
// stale-pointer behaviour faithfully.

#include <memory>
#include <vector>

#include "core/stream.h"

namespace normgraph {

class CpuStream final : public Stream {
 public:
  Device device() const override { return Device::Cpu(); }
  absl::Status Synchronize() override { return absl::OkStatus(); }

 protected:
  absl::Status Execute(const KernelDef& kernel, const void* params) override;
  absl::StatusOr<std::unique_ptr<ExecutableGraph>> Instantiate(
      std::vector<LaunchRecord> nodes) override;
  absl::Status CopyBytes(void* dst, const void* src, size_t bytes) override;
  absl::Status ZeroBytes(void* dst, size_t bytes) override;
};

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_CPU_STREAM_H_
