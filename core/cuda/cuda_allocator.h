#ifndef NORMGRAPH_CORE_CUDA_CUDA_ALLOCATOR_H_
#define NORMGRAPH_CORE_CUDA_CUDA_ALLOCATOR_H_

// A caching device allocator, as PyTorch's: a freed block goes into a cache by
// (rounded) size and is handed out again, at the same address, to the next
// request of that size. So a buffer freed and re-allocated (offload/restore, a
// loader that re-creates a tensor) often comes back at its old address, with
// new contents: exactly the case storage ids exist for. Blocks go back to the
// driver only on EmptyCache (or when cudaMalloc runs out of memory).

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/storage.h"

namespace normgraph {

class CachingCudaAllocator final : public Allocator {
 public:
  explicit CachingCudaAllocator(int device_index)
      : device_index_(device_index) {}
  ~CachingCudaAllocator() override;

  Device device() const override { return Device::Cuda(device_index_); }
  absl::StatusOr<void*> AllocateRaw(size_t bytes) override;
  void FreeRaw(void* ptr, size_t bytes) override;

  // Returns every cached block to the driver.
  absl::Status EmptyCache();

  // Blocks handed out now, and bytes held from the driver in all (in use plus
  // cached).
  int64_t blocks_in_use() const;
  size_t bytes_reserved() const;

  // Block sizes are rounded up to a multiple of this.
  static constexpr size_t kGranularity = 512;

 private:
  absl::Status EmptyCacheLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int device_index_;
  mutable absl::Mutex mu_;
  std::map<size_t, std::vector<void*>> cache_ ABSL_GUARDED_BY(mu_);
  int64_t in_use_ ABSL_GUARDED_BY(mu_) = 0;
  size_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_CUDA_CUDA_ALLOCATOR_H_
