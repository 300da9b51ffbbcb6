#ifndef NORMGRAPH_GRAPH_IDENTITY_SNAPSHOT_H_
#define NORMGRAPH_GRAPH_IDENTITY_SNAPSHOT_H_

// IdentitySnapshot: what a captured graph depends on, by name.
//
// At capture, every tensor argument of every node (from the launcher's record)
// is tied to the owner slot it came from (a module's parameter or buffer, a
// step buffer), and the slot's identity is recorded under its dotted name:
// - exactly, when the launch was bound to the slot's own tensor
//   (`&slot.tensor()`, as the norm modules bind their weights): this holds
//   even when several slots share one storage (tied weights, views of one
//   packed buffer), so each node depends on the slot it really read;
// - otherwise by storage id and byte range: to the one slot whose tensor holds
//   the argument, or, when several do, to all of them (an ambiguous use: any
//   of them moving is a violation, and it is repaired by recapture only).
// An argument no owner claims is an error (or, if allowed, is tracked by
// storage liveness only). Every owner whose slots the step reads must be
// listed: an argument read through a slot of an unlisted owner whose tensor a
// listed slot also holds (tied weights) is credited to the listed slot, and
// the unlisted slot's later moves are not seen. The structure version of every
// owner is recorded too. At replay, Verify re-reads each slot's current tensor
// and reports every tensor that moved (other storage, address, size, dtype,
// shape or strides), every derived buffer that is stale (its source was written
// or moved after its last refresh), and every owner part whose structure
// changed (slots added, a forward-path switch).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/source_location.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "core/tensor_slot.h"

namespace normgraph {

// One use of a tracked tensor by a node argument.
struct NodeArgUse {
  uint32_t node;
  uint16_t arg;
  size_t offset_in_slot;  // bytes from the slot tensor's data to the argument's
                          // data
  // Matched by address, and other slots held the argument's bytes too: the
  // node may have read any of them, so only a recapture can repair it.
  bool ambiguous = false;
};

struct TrackedTensor {
  std::string
      name;  // the owner's dotted name ("<unowned>" if no owner claimed it)
  TensorSlot* slot;  // null if unowned
  TensorIdentity captured;
  // Most tensors are used by a few arguments (captures take a snapshot
  // each): those need no allocation of their own.
  absl::InlinedVector<NodeArgUse, 4> uses;
  bool written = false;  // some node writes it (replays bump its version)
  // The storage the graph's nodes use (not kept alive): the captured one, or
  // the one a rebind patched in. Replays bump what they write, even when a
  // slot moved away under the unchecked policy.
  std::weak_ptr<Storage> storage;
  // A derived buffer no node was bound to, whose bytes lie in an argument
  // bound to another slot (a packed buffer of norm weights read whole): its
  // freshness is checked, not where it points (`uses` is empty).
  bool freshness_only = false;
};

enum class ViolationKind {
  kMoved,      // the slot now holds another tensor (storage, address, layout)
  kStale,      // a derived buffer whose source changed after its last refresh
  kFreed,      // an unowned argument's storage no longer exists
  kStructure,  // an owner part's structure changed (slots added, forward path)
};

struct Violation {
  static constexpr size_t kNoTensor = ~size_t{0};

  ViolationKind kind;
  size_t tracked;  // index into IdentitySnapshot::tensors(), or kNoTensor
  std::string name;
  TensorIdentity captured;
  TensorIdentity current;  // kMoved only
  SourceLocation
      moved_at;  // kMoved: where the slot was last rebound, if through the API
  std::string detail;  // kStale: why

  // "model.layers.0.input_layernorm.gemma_weight: moved from storage #12 ... to
  // storage #57 ... (rebound at layers/legacy_zero_centered_rms_norm.cc:29)".
  std::string ToString() const;
};

class IdentitySnapshot {
 public:
  // Maps every argument of every node of `graph` to its owner slot. With
  // `allow_unowned` false an argument no owner claims is an error that names
  // the node, the kernel and the storage.
  static absl::StatusOr<IdentitySnapshot> Take(
      const ExecutableGraph& graph, absl::Span<TensorOwner* const> owners,
      bool allow_unowned);

  // Appends every violation to `out` (cleared first). Allocates nothing when
  // there are none.
  void Verify(std::vector<Violation>& out, bool check_freshness = true) const;

  // Verify with a fast path: when the last VerifyFast found nothing wrong and
  // nothing it reads can have changed since (IdentityEpoch() unchanged: no
  // slot rebound, no derived slot declared or refreshed, no storage freed, no
  // write to the source of a derived buffer; and every owner's structure
  // version as captured), it returns at once with `out` empty. Otherwise it
  // runs Verify and remembers whether that was clean. Returns true if it took
  // the fast path. Allocates nothing when there are no violations.
  //
  // Audit mode (debug builds, fuzzing builds, or NORMGRAPH_AUDIT_CHECK=1 in
  // the environment) runs the full Verify on every fast path too and aborts,
  // naming the violations, if the fast path skipped any.
  bool VerifyFast(std::vector<Violation>& out, bool check_freshness = true);

  // Checks answered by VerifyFast's fast path, and by a full Verify.
  int64_t fast_checks() const { return fast_checks_; }
  int64_t full_checks() const { return full_checks_; }

  // Records the slot's current identity as the captured one (after a successful
  // rebind). The next VerifyFast runs in full.
  void Accept(size_t tracked);

  // After a replay that launched: bumps the write version of every tracked
  // storage a node writes, as an eager launch does, so a derived buffer whose
  // source a graph writes goes stale. Allocates nothing.
  void MarkWritten() const;

  const std::vector<TrackedTensor>& tensors() const { return tensors_; }

 private:
  struct OwnerStructure {
    const TensorOwner* owner;
    uint64_t version;
    std::vector<std::pair<std::string, uint64_t>> parts;  // name, version
  };
  void VerifyStructure(const OwnerStructure& s,
                       std::vector<Violation>& out) const;

  bool StructuresUnchanged() const;

  std::vector<TrackedTensor> tensors_;
  std::vector<OwnerStructure> structures_;
  // The IdentityEpoch() read before the last VerifyFast that found nothing
  // wrong (0: none yet, or something changed since), and whether that check
  // included freshness.
  uint64_t clean_epoch_ = 0;
  bool clean_with_freshness_ = false;
  std::vector<Violation> audit_;  // audit mode's full check (reused)
  int64_t fast_checks_ = 0;
  int64_t full_checks_ = 0;
};

// Whether VerifyFast audits its fast path (see there).
bool CheckAuditEnabled();

// The second, independent inventory: every non-null pointer field the
// instantiated graph's nodes hold (read back from the backend) must be exactly
// the address the launcher recorded for that field. A field holding anything
// else (a kernel that bypassed the launcher, a bad patch) is an error naming
// the node. `only_nodes` limits the check to those nodes (empty: all).
absl::Status CrossCheckNodePointers(const ExecutableGraph& graph,
                                    absl::Span<const uint32_t> only_nodes = {});

// "graph 'decode/b8': replay refused, 2 tensors changed since capture; nothing
// was launched:\n  ..."
std::string DescribeViolations(absl::string_view graph_name,
                               absl::Span<const Violation> violations);

// The tensor names a DescribeViolations message lists, one per violation line,
// in order (a tensor both moved and stale appears twice).
std::vector<std::string> ViolationNames(absl::string_view message);

}  // namespace normgraph

#endif  // NORMGRAPH_GRAPH_IDENTITY_SNAPSHOT_H_
