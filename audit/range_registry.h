#ifndef NORMGRAPH_AUDIT_RANGE_REGISTRY_H_
#define NORMGRAPH_AUDIT_RANGE_REGISTRY_H_

// The byte ranges a caller registered, and which of them contain an address.
//
// Ranges are [address, address + bytes) under a caller-chosen unique id. They
// may overlap (views of one buffer, tied weights): Find returns every range
// that contains the address. The first Find after a change builds an index
// (sorted starts and running maximum ends); a lookup is then a binary search
// plus a walk over the ranges that start between the earliest range still
// open at the address and the address itself. Not thread-safe.

#include <cstdint>
#include <unordered_set>
#include <vector>

#include "audit/status.h"

namespace normgraph::audit {

struct RangeMatch {
  uint64_t id;
  uint64_t offset;  // address - range start
};

class RangeRegistry {
 public:
  // INVALID_ARGUMENT for bytes == 0, a range that wraps past 2^64, or an id
  // already registered.
  Status Add(uint64_t id, uint64_t address, uint64_t bytes);
  void Clear();
  size_t size() const { return ranges_.size(); }

  // Appends a match for every range that contains `address`, in order of
  // range start, then registration.
  void Find(uint64_t address, std::vector<RangeMatch>* out) const;

 private:
  struct Range {
    uint64_t start;
    uint64_t end;  // exclusive
    uint64_t id;
  };
  void BuildIndex() const;

  std::vector<Range> ranges_;  // registration order
  std::unordered_set<uint64_t> ids_;
  // The index: ranges sorted by start, and the largest end among the first
  // i + 1 of them (a scan backwards from an address stops where no earlier
  // range can reach it).
  mutable bool indexed_ = true;
  mutable std::vector<Range> sorted_;
  mutable std::vector<uint64_t> max_end_;
};

}  // namespace normgraph::audit

#endif  // NORMGRAPH_AUDIT_RANGE_REGISTRY_H_
