#ifndef NORMGRAPH_CORE_STAGED_TRANSFERS_H_
#define NORMGRAPH_CORE_STAGED_TRANSFERS_H_

// The bookkeeping of a transfer batch (DeviceRuntime::BeginTransfers): which
// ranges of device memory the batch has queued copies for, and where their
// bytes lie in the host staging arena. A device runtime consults it to answer
// a read of device memory from the arena instead of the device:
//  - a range the batch wrote (host -> device) holds, once the batch's copies
//    complete, exactly the bytes staged for it, so a read of it needs neither
//    the device nor a wait;
//  - a range the batch fetched (device -> host, queued ahead of the read that
//    wants it) is in the arena once the queued copies complete.
// Only the newest record touching a range may answer: a range that a later
// copy overwrote in part is answered by neither record (the reader then goes
// to the device, after the queued copies).
//
// Host-only logic, so that it is tested without a GPU.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace normgraph {

class StagedTransfers {
 public:
  enum class Kind { kWritten, kFetched };

  struct Record {
    uintptr_t device = 0;     // first byte of the device range
    size_t bytes = 0;         // its length
    size_t arena_offset = 0;  // where its bytes are in the staging arena
    Kind kind = Kind::kWritten;
  };

  // Records a queued copy of [device, device + bytes), its bytes at
  // `arena_offset`.
  void Add(const void* device, size_t bytes, size_t arena_offset, Kind kind);

  // The arena offset of [device, device + bytes) if the newest record that
  // touches the range contains all of it (with its kind), else nothing: then
  // no record holds the range's current bytes.
  struct Hit {
    size_t arena_offset = 0;
    Kind kind = Kind::kWritten;
  };
  std::optional<Hit> Find(const void* device, size_t bytes) const;

  // Forgets every record (the batch ended, or its copies completed and the
  // arena is reused).
  void Clear() { records_.clear(); }
  bool empty() const { return records_.empty(); }

 private:
  std::vector<Record> records_;  // oldest first
};

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_STAGED_TRANSFERS_H_
