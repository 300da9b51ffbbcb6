#ifndef NORMGRAPH_CORE_CUDA_PINNED_STAGING_H_
#define NORMGRAPH_CORE_CUDA_PINNED_STAGING_H_

// Host <-> device copies through a pinned (page-locked) staging buffer, so the
// DMA engine reads and writes host memory directly at full speed and a copy
// from ordinary (pageable) memory, e.g. a memory-mapped checkpoint, costs one
// memcpy plus one DMA per chunk. The buffer grows on demand up to kMaxChunk
// and is reused; copies are serialised.
//
// Outside a batch every copy is synchronous: it waits for all queued device
// work (cudaDeviceSynchronize), copies and waits for the copy, two waits of a
// few microseconds each, which dominated a weight update of many small
// tensors. Inside a batch (DeviceRuntime::BeginTransfers, core/runtime.h) the
// device is waited for once, at the start; a host-to-device copy is staged in
// the buffer (used as an arena) and queued; a read of a range the batch wrote
// is answered from the staged bytes (StagedTransfers); reads can be queued
// ahead (Prefetch) so that many of them wait once; EndBatch waits for the
// queued copies. When the arena is full, the queued copies are waited for and
// it starts over (a larger one when a single copy needs it). A batch belongs
// to the thread that began it: other threads' copies and batches wait until
// it ends.

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/staged_transfers.h"

namespace normgraph {

class PinnedStaging {
 public:
  explicit PinnedStaging(int device_index) : device_index_(device_index) {}
  ~PinnedStaging();

  // Copies `bytes` from host memory to device memory, or back. Outside a
  // batch each waits for all queued device work first (cudaDeviceSynchronize),
  // so the copy is ordered after every earlier launch on every stream, and
  // returns once the copy is done; inside one, see above.
  absl::Status ToDevice(void* device_dst, const void* host_src, size_t bytes);
  absl::Status ToHost(void* host_dst, const void* device_src, size_t bytes);

  // Batches (they nest: only the outermost begins and ends). Prefetch queues
  // a read of `bytes` at `device_src` for a later ToHost; outside a batch it
  // does nothing.
  absl::Status BeginBatch();
  absl::Status Prefetch(const void* device_src, size_t bytes);
  absl::Status EndBatch();

  // The largest piece copied at once (and the staging buffer's largest size).
  static constexpr size_t kMaxChunk = size_t{64} << 20;

 private:
  // The staging buffer of at least `bytes` (created with the copy stream).
  absl::Status Reserve(size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The synchronous copies (also a batch's copies larger than kMaxChunk).
  absl::Status CopyToDevice(void* device_dst, const void* host_src,
                            size_t bytes, const std::string& context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CopyToHost(void* host_dst, const void* device_src, size_t bytes,
                          const std::string& context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the batch's records: the arena starts over.
  void ForgetStaged() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits for the batch's queued copies; the arena starts over.
  absl::Status CompleteQueued(const std::string& context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The arena offset of `bytes` more in a batch (waiting for the queued
  // copies and growing the buffer first when they do not fit).
  absl::StatusOr<size_t> ArenaSlot(size_t bytes, const std::string& context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  class TransferLock;

  const int device_index_;
  absl::Mutex mu_;
  void* pinned_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t capacity_ ABSL_GUARDED_BY(mu_) = 0;
  cudaStream_t copy_stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  int batch_depth_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread::id batch_owner_ ABSL_GUARDED_BY(mu_);
  size_t arena_used_ ABSL_GUARDED_BY(mu_) = 0;
  // Device-to-host copies queued and not yet waited for.
  bool reads_queued_ ABSL_GUARDED_BY(mu_) = false;
  StagedTransfers staged_ ABSL_GUARDED_BY(mu_);
};

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_CUDA_PINNED_STAGING_H_
