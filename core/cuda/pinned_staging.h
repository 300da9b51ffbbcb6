#ifndef NORMGRAPH_CORE_CUDA_PINNED_STAGING_H_
#define NORMGRAPH_CORE_CUDA_PINNED_STAGING_H_

// Host <-> device copies through a pinned (page-locked) staging buffer, so the
// DMA engine reads and writes host memory directly at full speed and a copy
// from ordinary (pageable) memory, e.g. a memory-mapped checkpoint, costs one
// memcpy plus one DMA per chunk. The buffer grows on demand up to kMaxChunk
// and is reused; copies are synchronous and serialised.

#include <cuda_runtime.h>

#include <cstddef>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace normgraph {

class PinnedStaging {
 public:
  explicit PinnedStaging(int device_index) : device_index_(device_index) {}
  ~PinnedStaging();

  // Copies `bytes` from host memory to device memory, or back. Waits for all
  // queued device work first (cudaDeviceSynchronize), so the copy is ordered
  // after every earlier launch on every stream.
  absl::Status ToDevice(void* device_dst, const void* host_src, size_t bytes);
  absl::Status ToHost(void* host_dst, const void* device_src, size_t bytes);

  // The largest piece copied at once (and the staging buffer's largest size).
  static constexpr size_t kMaxChunk = size_t{64} << 20;

 private:
  absl::Status Reserve(size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int device_index_;
  absl::Mutex mu_;
  void* pinned_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t capacity_ ABSL_GUARDED_BY(mu_) = 0;
  cudaStream_t copy_stream_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_CUDA_PINNED_STAGING_H_
