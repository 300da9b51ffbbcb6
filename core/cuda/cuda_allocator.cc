#include "core/cuda/cuda_allocator.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "core/cuda/cuda_device_scope.h"
#include "core/cuda/cuda_status.h"
#include "core/status_macros.h"

namespace normgraph {
namespace {

size_t RoundUp(size_t bytes) {
  const size_t g = CachingCudaAllocator::kGranularity;
  return (bytes + g - 1) / g * g;
}

}  // namespace

CachingCudaAllocator::~CachingCudaAllocator() {
  absl::MutexLock lock(&mu_);
  // Process exit: the driver reclaims everything; a failure here has nowhere
  // to go.
  EmptyCacheLocked().IgnoreError();
}

absl::StatusOr<void*> CachingCudaAllocator::AllocateRaw(size_t bytes) {
  const size_t rounded = RoundUp(bytes);
  absl::MutexLock lock(&mu_);
  auto it = cache_.find(rounded);
  if (it != cache_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    ++in_use_;
    return p;
  }
  const std::string context =
      absl::StrCat("cuda:", device_index_, " allocator, ", bytes, " B");
  NG_ASSIGN_OR_RETURN(CudaDeviceScope device,
                      CudaDeviceScope::Enter(device_index_, context));
  void* p = nullptr;
  cudaError_t error = cudaMalloc(&p, rounded);
  if (error == cudaErrorMemoryAllocation) {
    // Give the cached blocks back and try once more, as PyTorch does.
    cudaGetLastError();  // clear the (non-sticky) error
    absl::Status emptied = EmptyCacheLocked();
    if (!emptied.ok()) return emptied;
    error = cudaMalloc(&p, rounded);
  }
  if (error != cudaSuccess) {
    cudaGetLastError();
    return CudaStatus(error, "cudaMalloc(&p, rounded)", context);
  }
  ++in_use_;
  reserved_ += rounded;
  return p;
}

void CachingCudaAllocator::FreeRaw(void* ptr, size_t bytes) {
  absl::MutexLock lock(&mu_);
  cache_[RoundUp(bytes)].push_back(ptr);
  --in_use_;
}

absl::Status CachingCudaAllocator::EmptyCache() {
  absl::MutexLock lock(&mu_);
  return EmptyCacheLocked();
}

absl::Status CachingCudaAllocator::EmptyCacheLocked() {
  absl::Status status;
  for (auto& [size, blocks] : cache_) {
    for (void* p : blocks) {
      const cudaError_t error = cudaFree(p);
      if (error != cudaSuccess && status.ok()) {
        status =
            CudaStatus(error, "cudaFree(p)",
                       absl::StrCat("cuda:", device_index_,
                                    " allocator cache, block of ", size, " B"));
      }
      reserved_ -= size;
    }
  }
  cache_.clear();
  return status;
}

int64_t CachingCudaAllocator::blocks_in_use() const {
  absl::MutexLock lock(&mu_);
  return in_use_;
}

size_t CachingCudaAllocator::bytes_reserved() const {
  absl::MutexLock lock(&mu_);
  return reserved_;
}

}  // namespace normgraph
