#include "core/staged_transfers.h"

namespace normgraph {

void StagedTransfers::Add(const void* device, size_t bytes, size_t arena_offset,
                          Kind kind) {
  if (bytes == 0) return;
  records_.push_back(
      Record{reinterpret_cast<uintptr_t>(device), bytes, arena_offset, kind});
}

std::optional<StagedTransfers::Hit> StagedTransfers::Find(const void* device,
                                                          size_t bytes) const {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(device);
  const uintptr_t end = begin + bytes;
  for (auto it = records_.rbegin(); it != records_.rend(); ++it) {
    const uintptr_t r_begin = it->device;
    const uintptr_t r_end = r_begin + it->bytes;
    if (r_end <= begin || end <= r_begin) continue;  // disjoint
    if (r_begin <= begin && end <= r_end) {
      return Hit{it->arena_offset + (begin - r_begin), it->kind};
    }
    return std::nullopt;  // a newer copy covers part of the range only
  }
  return std::nullopt;
}

}  // namespace normgraph
