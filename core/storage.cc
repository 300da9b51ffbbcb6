#include "core/storage.h"

#include <cstdint>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NORMGRAPH_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define NORMGRAPH_ASAN 1
#endif
#ifdef NORMGRAPH_ASAN
#include <sanitizer/asan_interface.h>
#define NG_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define NG_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define NG_POISON(p, n) ((void)(p), (void)(n))
#define NG_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace normgraph {
namespace {

std::atomic<uint64_t> next_storage_id{1};
std::atomic<uint64_t> identity_epoch{1};
thread_local int refresh_writes_depth = 0;

class LiveStorages {
 public:
  void Add(uint64_t id) {
    absl::MutexLock lock(&mu_);
    ids_.insert(id);
  }
  void Remove(uint64_t id) {
    absl::MutexLock lock(&mu_);
    ids_.erase(id);
  }
  bool Contains(uint64_t id) {
    absl::MutexLock lock(&mu_);
    return ids_.contains(id);
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<uint64_t> ids_ ABSL_GUARDED_BY(mu_);
};

LiveStorages& Live() {
  static auto* live = new LiveStorages;
  return *live;
}

constexpr size_t kAlignment = 64;

// Host blocks are cached by size for the process's lifetime (never returned),
// so a freed block is reused at the same address by the next allocation of its
// size, as CUDA's caching allocator does. Small blocks are carved from 1 MiB
// slabs rather than allocated one by one: std::aligned_alloc splits a chunk of
// the general heap for each block and leaves fragments that the program's
// other small allocations then wade through (glibc's allocator took 20% of
// the graph-replay fuzzer's time; with slabs its fixed work over its corpus
// takes 0.85x the time, over random inputs 0.78x: fuzz/README.md). Under
// AddressSanitizer every block keeps its own allocation, so that its redzones
// still catch a write past one block into the next.
class CachingCpuAllocator final : public Allocator {
 public:
  Device device() const override { return Device::Cpu(); }

  absl::StatusOr<void*> AllocateRaw(size_t bytes) override {
    const size_t rounded = RoundUp(bytes);
    void* p = nullptr;
    {
      absl::MutexLock lock(&mu_);
      auto it = cache_.find(rounded);
      if (it != cache_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        NG_UNPOISON(p, rounded);
        return p;
      }
      if (kUseSlabs && rounded <= kLargestSlabBlock) p = CarveLocked(rounded);
    }
    if (p == nullptr) p = std::aligned_alloc(kAlignment, rounded);
    if (p == nullptr) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "cpu allocator: out of memory allocating %d bytes", bytes));
    }
    return p;
  }

  void FreeRaw(void* ptr, size_t bytes) override {
    const size_t rounded = RoundUp(bytes);
    NG_POISON(ptr, rounded);
    absl::MutexLock lock(&mu_);
    cache_[rounded].push_back(ptr);
  }

 private:
#ifdef NORMGRAPH_ASAN
  static constexpr bool kUseSlabs = false;
#else
  static constexpr bool kUseSlabs = true;
#endif
  static constexpr size_t kSlabBytes = size_t{1} << 20;
  static constexpr size_t kLargestSlabBlock = kSlabBytes / 16;

  static size_t RoundUp(size_t bytes) {
    return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  }

  // The next `rounded` bytes of the current slab (a new slab when it has too
  // few left; the rest of the old one stays unused), or null when no slab can
  // be allocated.
  void* CarveLocked(size_t rounded) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (slab_left_ < rounded) {
      slab_ = static_cast<char*>(std::aligned_alloc(kAlignment, kSlabBytes));
      slab_left_ = slab_ == nullptr ? 0 : kSlabBytes;
      if (slab_ == nullptr) return nullptr;
    }
    void* p = slab_;
    slab_ += rounded;
    slab_left_ -= rounded;
    return p;
  }

  absl::Mutex mu_;
  absl::flat_hash_map<size_t, std::vector<void*>> cache_ ABSL_GUARDED_BY(mu_);
  char* slab_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t slab_left_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

Storage::Storage(PrivateTag, void* data, size_t bytes, Device device,
                 Allocator* allocator, std::shared_ptr<const void> keep_alive)
    : id_(next_storage_id.fetch_add(1, std::memory_order_relaxed)),
      data_(data),
      bytes_(bytes),
      device_(device),
      allocator_(allocator),
      keep_alive_(std::move(keep_alive)) {
  Live().Add(id_);
}

RefreshWrites::RefreshWrites() { ++refresh_writes_depth; }
RefreshWrites::~RefreshWrites() { --refresh_writes_depth; }
bool RefreshWrites::Active() { return refresh_writes_depth > 0; }

uint64_t IdentityEpoch() {
  return identity_epoch.load(std::memory_order_acquire);
}

void BumpIdentityEpoch() {
  identity_epoch.fetch_add(1, std::memory_order_acq_rel);
}

Storage::~Storage() {
  Live().Remove(id_);
  BumpIdentityEpoch();  // an unowned argument's storage may be gone
  if (allocator_ != nullptr && data_ != nullptr)
    allocator_->FreeRaw(data_, bytes_);
}

absl::StatusOr<std::shared_ptr<Storage>> Storage::Allocate(Allocator& allocator,
                                                           size_t bytes) {
  // No allocator can give more (and rounding a size near SIZE_MAX up to an
  // alignment would wrap to a few bytes).
  if (bytes > static_cast<size_t>(PTRDIFF_MAX)) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "cannot allocate %d bytes on %s: more than any address space holds",
        bytes, allocator.device().ToString()));
  }
  void* data = nullptr;
  if (bytes > 0) {
    absl::StatusOr<void*> raw = allocator.AllocateRaw(bytes);
    if (!raw.ok()) return raw.status();
    data = *raw;
  }
  return std::make_shared<Storage>(PrivateTag(), data, bytes,
                                   allocator.device(), &allocator, nullptr);
}

std::shared_ptr<Storage> Storage::WrapExternal(
    void* data, size_t bytes, Device device,
    std::shared_ptr<const void> keep_alive) {
  return std::make_shared<Storage>(PrivateTag(), data, bytes, device, nullptr,
                                   std::move(keep_alive));
}

std::string Storage::DebugString() const {
  return absl::StrFormat("storage #%d (%d B at %p, %s)", id_, bytes_, data_,
                         device_.ToString());
}

bool StorageIsLive(uint64_t storage_id) { return Live().Contains(storage_id); }

Allocator& CpuAllocator() {
  static auto* allocator = new CachingCpuAllocator;
  return *allocator;
}

}  // namespace normgraph
