#ifndef NORMGRAPH_CORE_RUNTIME_H_
#define NORMGRAPH_CORE_RUNTIME_H_

// DeviceRuntime: what a backend offers the rest of normgraph for one device:
// its allocator, its streams, and host <-> device copies.
//
// The CPU runtime is always there. The CUDA runtime lives in core/cuda and is
// linked only into binaries built with --config=cuda; it registers itself at
// start-up, so code that names a device ("--device=cuda") works unchanged
// with either build and a CPU-only build answers with a clear error.

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/device.h"
#include "core/storage.h"
#include "core/stream.h"

namespace normgraph {

class DeviceRuntime {
 public:
  virtual ~DeviceRuntime() = default;

  virtual Device device() const = 0;
  // "cpu", "cuda:0 (NVIDIA H200, sm_90, 139.8 GiB)".
  virtual std::string Describe() const = 0;
  // The device's caching allocator (it hands a freed block of the same size
  // out again at the same address, as PyTorch's does).
  virtual Allocator& allocator() = 0;
  virtual absl::StatusOr<std::unique_ptr<Stream>> NewStream() = 0;

  // Waits until all work queued on the device has finished; reports any
  // asynchronous error a kernel raised.
  virtual absl::Status Synchronize() = 0;

  // Synchronous copies between ordinary host memory and the device's memory.
  // Each first waits for all queued device work (so a read sees every earlier
  // launch's writes and a write cannot race a running kernel); not allowed
  // while a stream of the device is capturing.
  virtual absl::Status CopyFromHost(void* device_dst, const void* host_src,
                                    size_t bytes) = 0;
  virtual absl::Status CopyToHost(void* host_dst, const void* device_src,
                                  size_t bytes) = 0;

  // Transfer batches, for many small copies (a weight update copies every
  // parameter in, reads back what it replaces and what derived buffers are
  // computed from): between BeginTransfers() and EndTransfers() the runtime
  // may queue copies rather than complete each one before returning.
  //  - BeginTransfers waits for all queued device work, once (outside a batch
  //    every copy does);
  //  - CopyFromHost returns once the source bytes are staged (the caller may
  //    reuse its buffer at once); the device memory holds them by
  //    EndTransfers;
  //  - CopyToHost returns what the memory holds after every copy queued
  //    before it; a range the batch wrote is answered from the staged bytes,
  //    without the device;
  //  - PrefetchToHost queues a read of a range that a later CopyToHost will
  //    ask for, so that many reads wait for the device once;
  //  - EndTransfers waits for every queued copy and reports their errors.
  // Batches nest (only the outermost begins and ends) and belong to the
  // thread that began them: another thread's copies and batches on the device
  // wait until the batch ends. While one is open, nothing but the batch may
  // write the device memory it copies to or from (no kernel launches). The
  // CPU runtime copies at once and ignores them.
  virtual absl::Status BeginTransfers() { return absl::OkStatus(); }
  virtual absl::Status PrefetchToHost(const void* /*device_src*/,
                                      size_t /*bytes*/) {
    return absl::OkStatus();
  }
  virtual absl::Status EndTransfers() { return absl::OkStatus(); }
};

// The CPU runtime: the caching CPU allocator, CpuStream, memcpy.
DeviceRuntime& CpuRuntime();

// Makes the runtime of one device; called once per device, on first use.
using RuntimeFactory = absl::StatusOr<DeviceRuntime*> (*)(int index);

// Registers the runtime factory of a device type (backends call this from a
// static initialiser). Returns true, so it can initialise a static.
bool RegisterRuntimeFactory(DeviceType type, RuntimeFactory factory);

// True if a backend for `type` is linked into this binary (the CPU always
// is). A linked backend may still fail to open a device (no GPU, driver).
bool BackendLinked(DeviceType type);

// The runtime of `device`, created on first use. An error says why it is not
// available (a CPU-only build, no such device, a driver error).
absl::StatusOr<DeviceRuntime*> GetRuntime(Device device);

// The runtime that owns `storage`'s memory.
absl::StatusOr<DeviceRuntime*> RuntimeOf(const Storage& storage);

// Parses "cpu", "cuda" (= "cuda:0") or "cuda:N".
absl::StatusOr<Device> ParseDevice(absl::string_view text);

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_RUNTIME_H_
