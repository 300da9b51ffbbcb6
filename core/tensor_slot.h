#ifndef NORMGRAPH_CORE_TENSOR_SLOT_H_
#define NORMGRAPH_CORE_TENSOR_SLOT_H_

// TensorSlot: a named place that holds a tensor handle (a module's parameter or
// buffer, or a graph's static input, output or workspace), and TensorOwner:
// whatever holds slots.
//
// The graph manager sees modules only through TensorOwner. At capture it maps
// every address a kernel touches to a slot and its dotted name; at replay it
// re-reads each slot's current tensor and compares identities. Rebinding a slot
// to other storage goes through Rebind(), which records the source line that
// did it, so a refused replay can point at the culprit.
//
// A derived slot (e.g. `gemma_weight = 1 + weight`) declares its source.
// Refreshing it records the source tensor's identity (storage, address,
// layout) and its storage's count of writes outside refreshes; if the source
// is written or re-pointed afterwards (even at another view of the same
// storage), IsStale() is true: right address, stale value. Writes made by a
// refresh count for no slot (derived buffers packed into one storage, or
// beside their sources, do not make each other stale), so a derived buffer's
// bytes must not overlap another slot's: a refresh would change that slot's
// values unseen (Refresh refuses the one overlap it can see, with its own
// source).

#include <cstdint>
#include <functional>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/source_location.h"
#include "core/tensor.h"

namespace normgraph {

enum class SlotKind {
  kParameter,  // loaded from a checkpoint
  kBuffer,     // module state that is not loaded (e.g. a derived buffer)
  kStatic,     // a graph's static input, output or workspace
};

absl::string_view SlotKindName(SlotKind kind);

class TensorSlot {
 public:
  TensorSlot(SlotKind kind, Tensor tensor)
      : kind_(kind), tensor_(std::move(tensor)) {}
  TensorSlot(const TensorSlot&) = delete;
  TensorSlot& operator=(const TensorSlot&) = delete;

  SlotKind kind() const { return kind_; }
  const Tensor& tensor() const { return tensor_; }

  // Points the slot at another tensor. Graphs captured earlier still hold the
  // old address: this is exactly what a graph manager must detect. Records the
  // caller's source location.
  void Rebind(Tensor tensor, SourceLocation where = SourceLocation::Current());
  int64_t rebind_count() const { return rebind_count_; }
  // Where the last Rebind happened (unknown if never rebound).
  const SourceLocation& last_rebind() const { return last_rebind_; }

  // Declares this slot derived from `source` (which must outlive it). `refresh`
  // recomputes this slot's contents from the source in place and must end with
  // MarkRefreshed(); the graph manager may call it to repair a stale buffer.
  // Chains are not supported: a source that is derived itself, or this slot
  // when it is another's source, stops the process with a message (a refresh
  // counts as a write for no slot, so a buffer derived from a derived buffer
  // would never go stale).
  void DeriveFrom(const TensorSlot* source,
                  std::function<absl::Status()> refresh);
  const TensorSlot* source() const { return source_; }
  // Records that the contents now reflect the source's current tensor and
  // writes (and that this slot's own tensor holds what the refresh wrote).
  // A refresh's writes are made under RefreshWrites (core/storage.h).
  void MarkRefreshed();
  // True if derived and, since the last refresh, the source's tensor
  // (storage, address, layout) changed or its storage was written other than
  // by a refresh, or this slot's own tensor changed (another storage, or
  // another view of its storage, which the refresh never wrote) or its
  // storage was written other than by a refresh (its values may no longer be
  // what the source gives).
  bool IsStale() const;
  // Why it is stale, e.g. "source storage #3 written after the last refresh
  // (5 writes other than refreshes, 4 at the refresh)" (empty if fresh).
  std::string StaleReason() const;
  // Runs the refresh function given to DeriveFrom (under RefreshWrites).
  // Refused (FailedPrecondition, naming both tensors) while this slot's bytes
  // overlap its source's: the refresh would overwrite what it reads.
  absl::Status Refresh();

 private:
  bool OwnStorageWritten() const;

  const SlotKind kind_;
  Tensor tensor_;
  int64_t rebind_count_ = 0;
  SourceLocation last_rebind_;
  const TensorSlot* source_ = nullptr;
  mutable bool is_source_ = false;  // some slot derives from this one
  std::function<absl::Status()> refresh_;
  // At the last refresh: the source tensor it read and its storage's writes
  // outside refreshes, this slot's tensor and its storage's.
  TensorIdentity refreshed_source_;
  uint64_t refreshed_source_writes_ = 0;
  TensorIdentity refreshed_self_;
  uint64_t refreshed_writes_ = 0;
};

using SlotVisitor =
    absl::FunctionRef<void(absl::string_view name, TensorSlot& slot)>;
using StructureVisitor =
    absl::FunctionRef<void(absl::string_view name, uint64_t version)>;

// Anything that holds named tensor slots: modules, graph static buffers.
class TensorOwner {
 public:
  virtual ~TensorOwner() = default;
  // Calls `visit` once per slot with its full dotted name
  // (`model.layers.3.input_layernorm.gemma_weight`), in a stable order. The
  // names stay valid as long as the owner lives.
  virtual void ForEachSlot(SlotVisitor visit) = 0;

  // A counter that changes whenever anything changes that decides which
  // kernels a forward pass launches and which slots it reads: slots added or
  // removed, a forward-path switch. A graph captured before a change replays
  // the old path, so a change is a violation. 0 for owners whose structure is
  // fixed.
  virtual uint64_t StructureVersion() const { return 0; }
  // The parts of the owner with a structure of their own (a module tree's
  // modules), each with its own version, to name what changed.
  virtual void ForEachStructure(StructureVisitor visit) const {}
};

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_TENSOR_SLOT_H_
