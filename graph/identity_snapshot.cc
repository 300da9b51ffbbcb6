#include "graph/identity_snapshot.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace normgraph {
namespace {

struct Candidate {
  absl::string_view name;  // owners keep their slot names alive
  TensorSlot* slot;
  uintptr_t begin;
  uintptr_t end;
};

// True if `t` still has exactly the captured identity (the byte size follows
// from dtype, shape and strides). Allocates nothing.
bool Matches(const Tensor& t, const TensorIdentity& id) {
  return t.defined() && t.storage()->id() == id.storage_id &&
         reinterpret_cast<uintptr_t>(t.data()) == id.address &&
         t.dtype() == id.dtype && t.shape() == id.shape &&
         t.strides() == id.strides;
}

// Whether the bytes [address, address + bytes) all lie in the elements of
// `t` (not merely inside its span): kNotAll when one provably lies in a gap
// between its elements (a column slice's other columns) or outside them;
// kUnknown where that is not simple to decide (overlapping or interleaved
// dimensions, or a read across very many runs of elements).
enum class Coverage { kAll, kNotAll, kUnknown };

Coverage ElementsCover(const Tensor& t, uintptr_t address, size_t bytes) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data());
  if (address < begin) return Coverage::kNotAll;
  const uint64_t end = address - begin + bytes;  // bytes from the first
  if (t.is_contiguous()) {
    return end <= t.span_bytes() ? Coverage::kAll : Coverage::kNotAll;
  }
  const uint64_t es = DTypeSize(t.dtype());
  // Dimensions of more than one element, by stride, innermost last.
  absl::InlinedVector<std::pair<int64_t, int64_t>, 4> dims;  // stride, size
  for (size_t i = 0; i < t.shape().size(); ++i) {
    if (t.shape()[i] > 1) dims.emplace_back(t.strides()[i], t.shape()[i]);
  }
  std::sort(dims.begin(), dims.end(), std::greater<>());
  // Each dimension's stride must pass everything inside it, all the inner
  // dimensions together (nested, no interleaving): then an element offset
  // decomposes greedily.
  int64_t inner = 1;  // elements an index of the next dimension out passes
  for (size_t k = dims.size(); k-- > 0;) {
    if (dims[k].first < inner) return Coverage::kUnknown;
    inner += (dims[k].second - 1) * dims[k].first;
  }
  // The innermost contiguous run, in elements.
  uint64_t run = 1;
  while (!dims.empty() && static_cast<uint64_t>(dims.back().first) == run) {
    run *= dims.back().second;
    dims.pop_back();
  }
  // Run by run from the first byte: each must start where the last ended
  // (nested blocks may touch: a block's last run and the next block's first).
  constexpr int kMaxRuns = 4096;
  uint64_t pos = address - begin;
  for (int runs = 0; pos < end; ++runs) {
    if (runs == kMaxRuns) return Coverage::kUnknown;
    const uint64_t element = pos / es;
    uint64_t rest = element;  // past the start of its run, if in one
    for (const auto& [stride, size] : dims) {
      const uint64_t step = static_cast<uint64_t>(stride);
      rest -= std::min<uint64_t>(rest / step, size - 1) * step;
    }
    if (rest >= run) return Coverage::kNotAll;
    pos = (element - rest + run) * es;
  }
  return Coverage::kAll;
}

// A dense row-major layout, whatever the strides of dimensions of size 1
// (a row narrowed out of a column slice is dense).
bool IsDense(const Shape& shape, const Shape& strides) {
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 1) continue;
    if (strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

}  // namespace

std::string Violation::ToString() const {
  switch (kind) {
    case ViolationKind::kMoved:
      return absl::StrCat(
          name, ": moved from ", captured.ToString(), " to ",
          current.ToString(),
          moved_at.known()
              ? absl::StrCat(" (rebound at ", moved_at.ToString(), ")")
              : std::string(" (not through a normgraph API)"));
    case ViolationKind::kStale:
      return absl::StrCat(name, ": stale: ", detail);
    case ViolationKind::kFreed:
      return absl::StrCat(name, ": ", captured.ToString(), " was freed",
                          detail.empty() ? "" : " (used by ", detail,
                          detail.empty() ? "" : ")");
    case ViolationKind::kStructure:
      return absl::StrCat(name,
                          ": structure changed since capture (slots added or "
                          "removed, or its forward path switched: ",
                          detail, ")");
  }
  return name;
}

absl::StatusOr<IdentitySnapshot> IdentitySnapshot::Take(
    const ExecutableGraph& graph, absl::Span<TensorOwner* const> owners,
    bool allow_unowned) {
  // Most storages hold one slot's tensor: a candidate list per storage that
  // allocates nothing for one (every capture builds these maps).
  absl::flat_hash_map<uint64_t, absl::InlinedVector<Candidate, 1>> by_storage;
  absl::flat_hash_map<const void*, Candidate> by_handle;
  IdentitySnapshot snapshot;
  for (TensorOwner* owner : owners) {
    owner->ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
      const Tensor& t = slot.tensor();
      if (!t.defined()) return;
      const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data());
      const Candidate c{name, &slot, begin, begin + t.span_bytes()};
      // An owner listed twice (or a module beside its parent) offers the same
      // slot again: one candidate per slot, or every use would look ambiguous.
      if (!by_handle.emplace(&t, c).second) return;
      by_storage[t.storage()->id()].push_back(c);
    });
    OwnerStructure structure{owner, owner->StructureVersion(), {}};
    owner->ForEachStructure([&](absl::string_view name, uint64_t version) {
      structure.parts.emplace_back(std::string(name), version);
    });
    snapshot.structures_.push_back(std::move(structure));
  }

  // Every tracked tensor is one of the candidates (or an unowned storage):
  // room for all of them up front.
  absl::flat_hash_map<const TensorSlot*, size_t> slot_index;
  slot_index.reserve(by_handle.size());
  snapshot.tensors_.reserve(by_handle.size());
  absl::flat_hash_map<uint64_t, size_t> unowned_index;
  std::vector<std::string> unowned_errors;
  std::vector<const Candidate*> matches, holding;
  std::vector<const Candidate*> derived_inside;
  auto track = [&](const Candidate& c) -> TrackedTensor& {
    auto [s, inserted] = slot_index.emplace(c.slot, snapshot.tensors_.size());
    if (inserted) {
      snapshot.tensors_.push_back(TrackedTensor{std::string(c.name),
                                                c.slot,
                                                c.slot->tensor().Identity(),
                                                {},
                                                false,
                                                c.slot->tensor().storage()});
    }
    return snapshot.tensors_[s->second];
  };
  const std::vector<LaunchRecord>& nodes = graph.nodes();
  for (uint32_t n = 0; n < nodes.size(); ++n) {
    for (uint16_t a = 0; a < nodes[n].args.size(); ++a) {
      const RecordedArg& recorded = nodes[n].args[a];
      const TensorIdentity& arg = recorded.identity;
      auto contains = [&arg](const Candidate& c) {
        return c.slot->tensor().storage()->id() == arg.storage_id &&
               c.begin <= arg.address && arg.address + arg.bytes <= c.end;
      };
      // Bound to a slot's own tensor: that slot, whoever else shares it.
      matches.clear();
      auto exact = by_handle.find(recorded.handle);
      if (exact != by_handle.end() && contains(exact->second)) {
        matches.push_back(&exact->second);
      } else if (auto it = by_storage.find(arg.storage_id);
                 it != by_storage.end()) {
        for (const Candidate& c : it->second) {
          if (contains(c)) matches.push_back(&c);
        }
        if (!matches.empty() && IsDense(arg.shape, arg.strides)) {
          // Slots whose spans hold a dense argument but whose elements
          // provably miss some of it (interleaved column slices of one
          // buffer) did not give it, if another slot may have.
          holding.clear();
          bool held = false;  // by one slot's elements, provably
          for (const Candidate* c : matches) {
            const Coverage cover =
                ElementsCover(c->slot->tensor(), arg.address, arg.bytes);
            if (cover != Coverage::kNotAll) holding.push_back(c);
            held |= cover == Coverage::kAll;
          }
          if (!holding.empty()) matches.swap(holding);
          // No slot is known to hold all of it: the bytes in one slot's
          // gaps are another's. Every slot whose span meets the argument
          // may have given part of it (an ambiguous use of each).
          if (!held) {
            for (const Candidate& c : it->second) {
              if (c.end > arg.address && arg.address + arg.bytes > c.begin &&
                  std::find(matches.begin(), matches.end(), &c) ==
                      matches.end()) {
                matches.push_back(&c);
              }
            }
          }
        }
      }
      if (matches.empty()) {
        if (!allow_unowned) {
          unowned_errors.push_back(
              absl::StrFormat("node %d (%s) argument %d: %s", n,
                              nodes[n].kernel->name, a, arg.ToString()));
          continue;
        }
        auto [u, inserted] =
            unowned_index.emplace(arg.storage_id, snapshot.tensors_.size());
        if (inserted) {
          snapshot.tensors_.push_back(TrackedTensor{
              "<unowned>", nullptr, arg, {}, false, recorded.storage});
        }
        TrackedTensor& t = snapshot.tensors_[u->second];
        t.uses.push_back(NodeArgUse{n, a, 0});
        t.written |= Writes(recorded.access);
        continue;
      }
      for (const Candidate* c : matches) {
        TrackedTensor& t = track(*c);
        t.uses.push_back(NodeArgUse{n, a,
                                    static_cast<size_t>(arg.address - c->begin),
                                    matches.size() > 1});
        t.written |= Writes(recorded.access);
      }
      // Derived buffers inside the bytes the argument reaches, through the
      // slot it was bound to: the node reads their values.
      auto storage = by_storage.find(arg.storage_id);
      if (storage == by_storage.end() || arg.bytes == 0) continue;
      for (const Candidate& c : storage->second) {
        if (c.slot->source() == nullptr || c.end <= arg.address ||
            arg.address + arg.bytes <= c.begin ||
            std::find(matches.begin(), matches.end(), &c) != matches.end()) {
          continue;
        }
        derived_inside.push_back(&c);
      }
    }
  }
  // Tracked for freshness alone, unless a node was bound to them too.
  for (const Candidate* c : derived_inside) {
    if (slot_index.contains(c->slot)) continue;
    track(*c).freshness_only = true;
  }
  if (!unowned_errors.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("capture: ", unowned_errors.size(),
                     " kernel arguments point at storage that no module or "
                     "step buffer owns, so they could "
                     "not be checked at replay:\n  ",
                     absl::StrJoin(unowned_errors, "\n  ")));
  }
  return snapshot;
}

void IdentitySnapshot::Verify(std::vector<Violation>& out,
                              bool check_freshness) const {
  out.clear();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TrackedTensor& t = tensors_[i];
    if (t.slot == nullptr) {
      if (!StorageIsLive(t.captured.storage_id)) {
        out.push_back(Violation{
            ViolationKind::kFreed,
            i,
            t.name,
            t.captured,
            {},
            {},
            absl::StrJoin(
                t.uses, ", ", [](std::string* s, const NodeArgUse& u) {
                  absl::StrAppend(s, "node ", u.node, " argument ", u.arg);
                })});
      }
      continue;
    }
    const Tensor& current = t.slot->tensor();
    if (!t.freshness_only && !Matches(current, t.captured)) {
      out.push_back(Violation{ViolationKind::kMoved, i, t.name, t.captured,
                              current.Identity(), t.slot->last_rebind(), ""});
    }
    if (check_freshness && t.slot->source() != nullptr && t.slot->IsStale()) {
      out.push_back(Violation{ViolationKind::kStale,
                              i,
                              t.name,
                              t.captured,
                              {},
                              {},
                              t.slot->StaleReason()});
    }
  }
  for (const OwnerStructure& s : structures_) {
    if (s.owner->StructureVersion() != s.version) VerifyStructure(s, out);
  }
}

bool CheckAuditEnabled() {
  static const bool enabled = [] {
#if !defined(NDEBUG) || defined(NORMGRAPH_FUZZING_BUILD_MODE)
    return true;
#else
    const char* env = std::getenv("NORMGRAPH_AUDIT_CHECK");
    return env != nullptr && std::strcmp(env, "0") != 0;
#endif
  }();
  return enabled;
}

bool IdentitySnapshot::StructuresUnchanged() const {
  for (const OwnerStructure& s : structures_) {
    if (s.owner->StructureVersion() != s.version) return false;
  }
  return true;
}

bool IdentitySnapshot::VerifyFast(std::vector<Violation>& out,
                                  bool check_freshness) {
  // Read before looking at anything: a change made while the full check runs
  // moves the epoch past the one recorded, so the next check is full again.
  const uint64_t epoch = IdentityEpoch();
  if (epoch == clean_epoch_ && (clean_with_freshness_ || !check_freshness) &&
      StructuresUnchanged()) {
    out.clear();
    ++fast_checks_;
    if (CheckAuditEnabled()) {
      Verify(audit_, check_freshness);
      if (!audit_.empty()) {
        std::fprintf(stderr,
                     "normgraph: the identity check's fast path skipped %zu "
                     "violations (epoch %llu unchanged):\n%s\n",
                     audit_.size(), static_cast<unsigned long long>(epoch),
                     DescribeViolations("<audit>", audit_).c_str());
        std::abort();
      }
    }
    return true;
  }
  Verify(out, check_freshness);
  ++full_checks_;
  if (out.empty()) {
    clean_epoch_ = epoch;
    clean_with_freshness_ = check_freshness;
  } else {
    clean_epoch_ = 0;
  }
  return false;
}

// Names the parts whose structure changed (rare: allocates freely).
void IdentitySnapshot::VerifyStructure(const OwnerStructure& s,
                                       std::vector<Violation>& out) const {
  absl::flat_hash_map<std::string, uint64_t> before(s.parts.begin(),
                                                    s.parts.end());
  size_t named = 0;
  s.owner->ForEachStructure([&](absl::string_view name, uint64_t version) {
    auto it = before.find(name);
    if (it != before.end() && it->second == version) {
      before.erase(it);
      return;
    }
    const std::string detail =
        it == before.end() ? std::string("added since capture")
                           : absl::StrFormat("version %d at capture, %d now",
                                             it->second, version);
    if (it != before.end()) before.erase(it);
    out.push_back(Violation{ViolationKind::kStructure,
                            Violation::kNoTensor,
                            std::string(name),
                            {},
                            {},
                            {},
                            detail});
    ++named;
  });
  for (const auto& [name, version] : before) {
    out.push_back(Violation{ViolationKind::kStructure,
                            Violation::kNoTensor,
                            name,
                            {},
                            {},
                            {},
                            "removed since capture"});
    ++named;
  }
  if (named == 0) {
    out.push_back(
        Violation{ViolationKind::kStructure,
                  Violation::kNoTensor,
                  "<owner>",
                  {},
                  {},
                  {},
                  absl::StrFormat("structure version %d at capture, %d now",
                                  s.version, s.owner->StructureVersion())});
  }
}

void IdentitySnapshot::MarkWritten() const {
  for (const TrackedTensor& t : tensors_) {
    if (!t.written) continue;
    // Usually the slot still holds the storage the nodes write (no weak_ptr
    // lock, an atomic operation, per replay).
    if (t.slot != nullptr && t.slot->tensor().defined() &&
        t.slot->tensor().storage()->id() == t.captured.storage_id) {
      t.slot->tensor().storage()->BumpWriteVersion();
    } else if (std::shared_ptr<Storage> storage = t.storage.lock()) {
      storage->BumpWriteVersion();
    }
  }
}

void IdentitySnapshot::Accept(size_t tracked) {
  clean_epoch_ = 0;
  TrackedTensor& t = tensors_[tracked];
  if (t.slot != nullptr) {
    t.captured = t.slot->tensor().Identity();
    t.storage = t.slot->tensor().storage();
  }
}

absl::Status CrossCheckNodePointers(const ExecutableGraph& graph,
                                    absl::Span<const uint32_t> only_nodes) {
  const std::vector<LaunchRecord>& nodes = graph.nodes();
  absl::StatusOr<std::vector<absl::InlinedVector<uintptr_t, 8>>> read =
      graph.ReadBackPointerFields(only_nodes);
  if (!read.ok()) return read.status();
  const std::vector<absl::InlinedVector<uintptr_t, 8>>& fields = *read;
  const size_t count = only_nodes.empty() ? nodes.size() : only_nodes.size();
  if (fields.size() != count) {
    return absl::InternalError(absl::StrFormat(
        "graph read back %d nodes, expected %d", fields.size(), count));
  }
  for (size_t i = 0; i < count; ++i) {
    const size_t n = only_nodes.empty() ? i : only_nodes[i];
    const KernelDef& kernel = *nodes[n].kernel;
    for (size_t k = 0; k < kernel.pointer_offsets.size(); ++k) {
      uintptr_t expected = 0;
      for (const RecordedArg& arg : nodes[n].args) {
        if (arg.offset == kernel.pointer_offsets[k])
          expected = arg.identity.address;
      }
      if (fields[i][k] != expected) {
        return absl::InternalError(absl::StrFormat(
            "node %d (%s): pointer field at byte offset %d holds %#x in the "
            "instantiated graph, "
            "but the launcher recorded %#x",
            n, kernel.name, kernel.pointer_offsets[k], fields[i][k], expected));
      }
    }
  }
  return absl::OkStatus();
}

std::string DescribeViolations(absl::string_view graph_name,
                               absl::Span<const Violation> violations) {
  std::string out = absl::StrCat(
      "graph '", graph_name, "': replay refused, ", violations.size(),
      violations.size() == 1 ? " tensor" : " tensors",
      " changed since capture; nothing was launched:");
  for (const Violation& v : violations)
    absl::StrAppend(&out, "\n  ", v.ToString());
  return out;
}

std::vector<std::string> ViolationNames(absl::string_view message) {
  std::vector<std::string> names;
  for (absl::string_view line : absl::StrSplit(message, '\n')) {
    if (!absl::ConsumePrefix(&line, "  ")) continue;
    names.emplace_back(line.substr(0, line.find(':')));
  }
  return names;
}

}  // namespace normgraph
