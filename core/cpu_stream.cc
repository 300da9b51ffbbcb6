#include "core/cpu_stream.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace normgraph {
namespace {

// The instantiated graph keeps its own copy of every node's parameters, as a
// CUDA graph exec does: what it runs is this copy, and ReadBackPointerFields
// reads this copy, not the launcher's record.
class CpuGraph final : public ExecutableGraph {
 public:
  explicit CpuGraph(std::vector<LaunchRecord> nodes)
      : ExecutableGraph(std::move(nodes)) {
    exec_params_.reserve(nodes_.size());
    for (const LaunchRecord& node : nodes_) exec_params_.push_back(node.params);
  }

  absl::Status Replay() override {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      nodes_[i].kernel->cpu_entry(exec_params_[i].data());
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<absl::InlinedVector<uintptr_t, 8>>>
  ReadBackPointerFields(absl::Span<const uint32_t> only_nodes) const override {
    std::vector<absl::InlinedVector<uintptr_t, 8>> out;
    const size_t count = only_nodes.empty() ? nodes_.size() : only_nodes.size();
    out.reserve(count);
    for (size_t k = 0; k < count; ++k) {
      const size_t i = only_nodes.empty() ? k : only_nodes[k];
      absl::InlinedVector<uintptr_t, 8> fields;
      for (uint16_t offset : nodes_[i].kernel->pointer_offsets) {
        uintptr_t value;
        std::memcpy(&value, exec_params_[i].data() + offset, sizeof value);
        fields.push_back(value);
      }
      out.push_back(std::move(fields));
    }
    return out;
  }

 protected:
  absl::Status WriteNodeParams(size_t node) override {
    exec_params_[node] = nodes_[node].params;
    return absl::OkStatus();
  }

 private:
  std::vector<std::vector<uint8_t>> exec_params_;
};

}  // namespace

absl::Status CpuStream::Execute(const KernelDef& kernel, const void* params) {
  if (kernel.cpu_entry == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat("kernel ", kernel.name, " has no CPU entry"));
  }
  kernel.cpu_entry(params);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ExecutableGraph>> CpuStream::Instantiate(
    std::vector<LaunchRecord> nodes) {
  for (const LaunchRecord& node : nodes) {
    if (node.kernel->cpu_entry == nullptr) {
      return absl::UnimplementedError(
          absl::StrCat("kernel ", node.kernel->name, " has no CPU entry"));
    }
  }
  return std::unique_ptr<ExecutableGraph>(new CpuGraph(std::move(nodes)));
}

absl::Status CpuStream::CopyBytes(void* dst, const void* src, size_t bytes) {
  std::memmove(dst, src, bytes);
  return absl::OkStatus();
}

absl::Status CpuStream::ZeroBytes(void* dst, size_t bytes) {
  std::memset(dst, 0, bytes);
  return absl::OkStatus();
}

}  // namespace normgraph
