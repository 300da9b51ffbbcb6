#ifndef NORMGRAPH_CORE_STREAM_H_
#define NORMGRAPH_CORE_STREAM_H_

// Stream: the one launcher every kernel goes through, and stream capture into
// graphs.
//
// Eagerly, a launch runs the kernel (on the CPU backend: at once) and bumps the
// write version of every storage it writes. Between BeginCapture and EndCapture
// a launch is *recorded* and not run, exactly like CUDA stream capture;
// EndCapture instantiates an ExecutableGraph whose Replay runs the recorded
// launches with the raw addresses they were recorded with. A handle rebound
// after capture therefore leaves the graph reading the old memory, as on a GPU.
//
// Each recorded node keeps, next to its raw parameter bytes, the identity of
// every tensor its pointer fields refer to. That record is what graph/ checks
// at every replay and what rebind patches.

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <type_traits>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/device.h"
#include "core/kernel_def.h"
#include "core/tensor.h"

namespace normgraph {

// Binds one pointer field of a kernel's params (`field` points into the params
// struct) to the tensor it refers to. The field must hold exactly
// tensor->data().
struct ArgBinding {
  const void* field;
  const Tensor* tensor;
  Access access;
};

struct RecordedArg {
  uint16_t offset;  // byte offset of the pointer field in the params
  Access access;
  TensorIdentity identity;  // of the bound tensor, at record time
  // The address of the Tensor object the launch was bound to. When a module
  // binds its slot's own tensor (`&slot.tensor()`), this says exactly which
  // slot the argument came from, even where several slots share a storage
  // (tied weights, views of one packed buffer). Only ever compared, never
  // dereferenced.
  const void* handle = nullptr;
  // The bound storage, not kept alive: lets a replay bump the write version of
  // a storage no owner claims (GraphOptions::allow_unowned).
  std::weak_ptr<Storage> storage;
};

// One launch as recorded during capture.
struct LaunchRecord {
  const KernelDef* kernel = nullptr;
  std::vector<uint8_t> params;
  absl::InlinedVector<RecordedArg, 6> args;
};

// A captured, instantiated graph.
class ExecutableGraph {
 public:
  virtual ~ExecutableGraph() = default;

  // Runs every node, in capture order, with the parameters it currently holds.
  virtual absl::Status Replay() = 0;

  // The launcher's record of every node (parameters as currently set).
  const std::vector<LaunchRecord>& nodes() const { return nodes_; }

  // Points argument `arg` of node `node` at `tensor`, which must have the same
  // device and layout (dtype, shape, strides, bytes) as the tensor recorded
  // there. Updates the launcher's record and the backend's copy of the node's
  // parameters; never touches anything else. On an error the record is as it
  // was, but the backend's copy may be half written: a graph whose rebind
  // failed must not be launched again (CapturedGraph recaptures it).
  absl::Status RebindArg(size_t node, size_t arg, const Tensor& tensor);

  // The independent inventory: for every node (or the nodes listed), the value
  // of every pointer field as the backend's graph holds it now (CUDA: read back
  // from the driver), in KernelDef order. An error if the backend's node is not
  // the kernel the launcher recorded (another function or parameter size).
  virtual absl::StatusOr<std::vector<absl::InlinedVector<uintptr_t, 8>>>
  ReadBackPointerFields(absl::Span<const uint32_t> only_nodes = {}) const = 0;

 protected:
  explicit ExecutableGraph(std::vector<LaunchRecord> nodes)
      : nodes_(std::move(nodes)) {}
  // Copies node `node`'s parameters (the launcher's record, already patched)
  // into the backend.
  virtual absl::Status WriteNodeParams(size_t node) = 0;

  std::vector<LaunchRecord> nodes_;
};

class Stream {
 public:
  virtual ~Stream() = default;
  virtual Device device() const = 0;

  // Launches `kernel` with `params`. Every non-null pointer field of `params`
  // must be bound by exactly one entry of `args`, and each bound tensor must
  // live on this stream's device.
  template <typename Params>
  absl::Status Launch(const KernelDef& kernel, const Params& params,
                      std::initializer_list<ArgBinding> args) {
    static_assert(std::is_trivially_copyable<Params>::value,
                  "kernel params must be POD");
    return LaunchRaw(kernel, &params, sizeof(Params), args);
  }
  absl::Status LaunchRaw(const KernelDef& kernel, const void* params,
                         size_t params_size, absl::Span<const ArgBinding> args);

  // Starts recording launches instead of running them. Captures do not nest.
  absl::Status BeginCapture();
  // Stops recording and instantiates the graph. If any launch failed while
  // capturing, the capture is invalidated and that error is returned (as CUDA
  // does).
  absl::StatusOr<std::unique_ptr<ExecutableGraph>> EndCapture();
  bool is_capturing() const { return capturing_; }

  // Waits for all work queued on the stream (a no-op on the CPU backend).
  virtual absl::Status Synchronize() = 0;

  // Eager data movement on the stream (not capturable): copies `src` into `dst`
  // (same shape and dtype, both contiguous, on this device), or zeroes `dst`.
  // Each counts as a write through the API (bumps the destination's write
  // version).
  absl::Status Copy(const Tensor& src, const Tensor& dst);
  absl::Status Zero(const Tensor& dst);

  // Kernels run eagerly so far (not counting replays); for tests and
  // statistics.
  int64_t eager_launches() const { return eager_launches_; }

 protected:
  // Runs one launch now.
  virtual absl::Status Execute(const KernelDef& kernel, const void* params) = 0;
  // Device memcpy / memset on this stream.
  virtual absl::Status CopyBytes(void* dst, const void* src, size_t bytes) = 0;
  virtual absl::Status ZeroBytes(void* dst, size_t bytes) = 0;
  // Turns the recorded launches into an executable graph.
  virtual absl::StatusOr<std::unique_ptr<ExecutableGraph>> Instantiate(
      std::vector<LaunchRecord> nodes) = 0;

  // Capture hooks. The CPU backend only records (the defaults); the CUDA
  // backend starts a real stream capture, launches each recorded kernel into
  // it (remembering the graph node CUDA made for it), and ends the capture in
  // Instantiate. AbortBackendCapture ends a capture that failed, discarding
  // the graph.
  virtual absl::Status BeginBackendCapture() { return absl::OkStatus(); }
  virtual absl::Status CaptureLaunch(const KernelDef& kernel,
                                     const void* params) {
    return absl::OkStatus();
  }
  virtual void AbortBackendCapture() {}

 private:
  absl::Status Validate(const KernelDef& kernel, const void* params,
                        size_t params_size,
                        absl::Span<const ArgBinding> args) const;

  bool capturing_ = false;
  absl::Status capture_error_;
  std::vector<LaunchRecord> captured_;
  // Launches the last capture recorded: room reserved for the next one (a
  // step is usually captured again with the same launches), so recording
  // does not move every record as the list grows.
  size_t last_capture_size_ = 0;
  int64_t eager_launches_ = 0;
};

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_STREAM_H_
