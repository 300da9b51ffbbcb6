#ifndef NORMGRAPH_CORE_STORAGE_H_
#define NORMGRAPH_CORE_STORAGE_H_

// Storage: one allocation, with a process-unique id that is never reused.
//
// The id is what lets the graph manager tell "the same buffer" from "a new
// buffer that happens to sit at the same address" (a freed block handed out
// again by a caching allocator). Every in-place write through normgraph's API
// bumps the storage's write version, which is how derived buffers
// (`1 + weight`) are checked for freshness.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/device.h"

namespace normgraph {

// Hands out raw memory for storages.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual Device device() const = 0;
  // Returns memory for `bytes` bytes (bytes > 0), aligned to at least 64 bytes.
  virtual absl::StatusOr<void*> AllocateRaw(size_t bytes) = 0;
  virtual void FreeRaw(void* ptr, size_t bytes) = 0;
};

// A process-wide counter that moves whenever something may have changed that
// a captured graph's identity check reads: a slot rebound, a derived slot
// declared or refreshed, a storage freed, a write to a storage that a derived
// buffer is computed from (Storage::WatchWrites). While it stands still, a
// check that found nothing wrong would find nothing wrong again
// (graph/identity_snapshot.h uses this to skip the per-tensor compare).
uint64_t IdentityEpoch();
void BumpIdentityEpoch();

// While one is alive on a thread, the in-place writes that thread makes are a
// derived buffer's refresh (TensorSlot::DeriveFrom): they move a storage's
// write_version() but not its writes_outside_refreshes(), which is what a
// derived slot's staleness compares. So refreshing one derived buffer makes
// neither the derived buffers that share its storage stale (views of one
// packed buffer) nor the sources packed there. A refresh writes its own
// slot's view and nothing else. Nests.
class RefreshWrites {
 public:
  RefreshWrites();
  ~RefreshWrites();
  RefreshWrites(const RefreshWrites&) = delete;
  RefreshWrites& operator=(const RefreshWrites&) = delete;
  // Whether one is alive on this thread.
  static bool Active();
};

class Storage {
 public:
  // Allocates `bytes` bytes (zero is allowed and allocates nothing) from
  // `allocator`, which must outlive the storage.
  static absl::StatusOr<std::shared_ptr<Storage>> Allocate(Allocator& allocator,
                                                           size_t bytes);

  // Wraps memory owned by someone else, e.g. a memory-mapped checkpoint.
  // `keep_alive` keeps that memory valid for as long as the storage lives.
  static std::shared_ptr<Storage> WrapExternal(
      void* data, size_t bytes, Device device,
      std::shared_ptr<const void> keep_alive);

 private:
  struct PrivateTag {
    explicit PrivateTag() = default;
  };

 public:
  // For Allocate and WrapExternal only (through std::make_shared, which puts
  // the storage and its reference count in one allocation): the tag cannot be
  // named outside the class.
  Storage(PrivateTag, void* data, size_t bytes, Device device,
          Allocator* allocator, std::shared_ptr<const void> keep_alive);

  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  uint64_t id() const { return id_; }
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

  // Number of in-place writes made through normgraph's API since allocation.
  uint64_t write_version() const {
    return write_version_.load(std::memory_order_acquire);
  }
  // Of those, the writes not made by a derived buffer's refresh
  // (RefreshWrites).
  uint64_t writes_outside_refreshes() const {
    return writes_outside_refreshes_.load(std::memory_order_acquire);
  }
  void BumpWriteVersion() {
    write_version_.fetch_add(1, std::memory_order_acq_rel);
    if (!RefreshWrites::Active()) {
      writes_outside_refreshes_.fetch_add(1, std::memory_order_acq_rel);
    }
    if (watched_.load(std::memory_order_acquire)) BumpIdentityEpoch();
  }
  // Marks this storage as read by a derived buffer (the source of a
  // TensorSlot::DeriveFrom): from now on each write also bumps
  // IdentityEpoch(). Never undone.
  void WatchWrites() { watched_.store(true, std::memory_order_release); }

  // "storage #12 (16384 B at 0x55d0c0a1b000, cpu)".
  std::string DebugString() const;

 private:
  const uint64_t id_;
  void* const data_;
  const size_t bytes_;
  const Device device_;
  Allocator* const allocator_;  // null for external memory
  const std::shared_ptr<const void> keep_alive_;
  std::atomic<uint64_t> write_version_{0};
  std::atomic<uint64_t> writes_outside_refreshes_{0};
  std::atomic<bool> watched_{false};
};

// True while a storage with this id exists. Ids are never reused, so a false
// answer is final.
bool StorageIsLive(uint64_t storage_id);

// The process-wide CPU allocator. It caches freed blocks by size and hands them
// out again, as PyTorch's and CUDA's caching allocators do, so a
// freed-and-reallocated buffer often comes back at the same address: exactly
// the case that needs storage ids. Cached blocks are poisoned for
// AddressSanitizer while they sit in the cache.
Allocator& CpuAllocator();

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_STORAGE_H_
