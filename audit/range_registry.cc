#include "audit/range_registry.h"

#include <algorithm>
#include <string>

namespace normgraph::audit {

Status RangeRegistry::Add(uint64_t id, uint64_t address, uint64_t bytes) {
  if (bytes == 0) {
    return InvalidArgument("range " + std::to_string(id) + " is empty");
  }
  if (address + bytes < address) {
    return InvalidArgument("range " + std::to_string(id) +
                           " wraps past the end of the address space");
  }
  if (ids_.count(id) != 0) {
    return InvalidArgument("range id " + std::to_string(id) +
                           " is already registered");
  }
  // The range first, then its id: if either throws (out of memory), the
  // registry is as it was.
  ranges_.push_back(Range{address, address + bytes, id});
  try {
    ids_.insert(id);
  } catch (...) {
    ranges_.pop_back();
    throw;
  }
  indexed_ = false;
  return Status();
}

void RangeRegistry::Clear() {
  ranges_.clear();
  ids_.clear();
  indexed_ = false;
}

void RangeRegistry::BuildIndex() const {
  sorted_ = ranges_;
  std::stable_sort(
      sorted_.begin(), sorted_.end(),
      [](const Range& a, const Range& b) { return a.start < b.start; });
  max_end_.resize(sorted_.size());
  uint64_t max_end = 0;
  for (size_t i = 0; i < sorted_.size(); ++i) {
    max_end = std::max(max_end, sorted_[i].end);
    max_end_[i] = max_end;
  }
  indexed_ = true;
}

void RangeRegistry::Find(uint64_t address, std::vector<RangeMatch>* out) const {
  if (!indexed_) BuildIndex();
  // Ranges that start at or before the address: [0, first).
  const size_t first = std::upper_bound(sorted_.begin(), sorted_.end(), address,
                                        [](uint64_t a, const Range& range) {
                                          return a < range.start;
                                        }) -
                       sorted_.begin();
  size_t begin = first;
  while (begin > 0 && max_end_[begin - 1] > address) --begin;
  for (size_t i = begin; i < first; ++i) {
    if (sorted_[i].end > address) {
      out->push_back(RangeMatch{sorted_[i].id, address - sorted_[i].start});
    }
  }
}

}  // namespace normgraph::audit
