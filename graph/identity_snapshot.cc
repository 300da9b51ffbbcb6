#include "graph/identity_snapshot.h"

#include <limits>

#include "absl/container/flat_hash_map.h"
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
      return absl::StrCat(name, ": ", captured.ToString(), " was freed");
  }
  return name;
}

absl::StatusOr<IdentitySnapshot> IdentitySnapshot::Take(
    const ExecutableGraph& graph, absl::Span<TensorOwner* const> owners,
    bool allow_unowned) {
  absl::flat_hash_map<uint64_t, std::vector<Candidate>> by_storage;
  for (TensorOwner* owner : owners) {
    owner->ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
      const Tensor& t = slot.tensor();
      if (!t.defined()) return;
      const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data());
      by_storage[t.storage()->id()].push_back(
          Candidate{name, &slot, begin, begin + t.span_bytes()});
    });
  }

  IdentitySnapshot snapshot;
  absl::flat_hash_map<const TensorSlot*, size_t> slot_index;
  absl::flat_hash_map<uint64_t, size_t> unowned_index;
  std::vector<std::string> unowned_errors;
  const std::vector<LaunchRecord>& nodes = graph.nodes();
  for (uint32_t n = 0; n < nodes.size(); ++n) {
    for (uint16_t a = 0; a < nodes[n].args.size(); ++a) {
      const TensorIdentity& arg = nodes[n].args[a].identity;
      const Candidate* best = nullptr;
      auto it = by_storage.find(arg.storage_id);
      if (it != by_storage.end()) {
        for (const Candidate& c : it->second) {
          if (c.begin <= arg.address && arg.address + arg.bytes <= c.end &&
              (best == nullptr || c.end - c.begin < best->end - best->begin)) {
            best = &c;
          }
        }
      }
      if (best == nullptr) {
        if (!allow_unowned) {
          unowned_errors.push_back(
              absl::StrFormat("node %d (%s) argument %d: %s", n,
                              nodes[n].kernel->name, a, arg.ToString()));
          continue;
        }
        auto [u, inserted] =
            unowned_index.emplace(arg.storage_id, snapshot.tensors_.size());
        if (inserted)
          snapshot.tensors_.push_back(
              TrackedTensor{"<unowned>", nullptr, arg, {}});
        snapshot.tensors_[u->second].uses.push_back(NodeArgUse{n, a, 0});
        continue;
      }
      auto [s, inserted] =
          slot_index.emplace(best->slot, snapshot.tensors_.size());
      if (inserted) {
        snapshot.tensors_.push_back(
            TrackedTensor{std::string(best->name),
                          best->slot,
                          best->slot->tensor().Identity(),
                          {}});
      }
      snapshot.tensors_[s->second].uses.push_back(
          NodeArgUse{n, a, static_cast<size_t>(arg.address - best->begin)});
    }
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
            ViolationKind::kFreed, i, t.name, t.captured, {}, {}, ""});
      }
      continue;
    }
    const Tensor& current = t.slot->tensor();
    if (!Matches(current, t.captured)) {
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
}

void IdentitySnapshot::Accept(size_t tracked) {
  TrackedTensor& t = tensors_[tracked];
  if (t.slot != nullptr) t.captured = t.slot->tensor().Identity();
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
