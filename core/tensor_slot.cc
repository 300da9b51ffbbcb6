#include "core/tensor_slot.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace normgraph {

absl::string_view SlotKindName(SlotKind kind) {
  switch (kind) {
    case SlotKind::kParameter:
      return "parameter";
    case SlotKind::kBuffer:
      return "buffer";
    case SlotKind::kStatic:
      return "static";
  }
  return "invalid";
}

void TensorSlot::Rebind(Tensor tensor, SourceLocation where) {
  tensor_ = std::move(tensor);
  ++rebind_count_;
  last_rebind_ = where;
  BumpIdentityEpoch();
}

void TensorSlot::DeriveFrom(const TensorSlot* source,
                            std::function<absl::Status()> refresh) {
  const char* refused = source == nullptr ? "a null source"
                        : source == this  ? "itself"
                        : source->source_ ? "a source that is derived itself"
                        : is_source_      ? "a source, while another slot "
                                            "derives from this one"
                                          : nullptr;
  if (refused != nullptr) {
    std::fprintf(stderr,
                 "normgraph: TensorSlot::DeriveFrom with %s: chains of derived "
                 "buffers are not supported (a refresh's writes make no slot "
                 "stale, so the later buffer would never be refreshed)\n",
                 refused);
    std::abort();
  }
  source->is_source_ = true;
  source_ = source;
  refresh_ = std::move(refresh);
  BumpIdentityEpoch();
}

namespace {

bool SameDims(absl::Span<const int64_t> a, absl::Span<const int64_t> b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// The source is the tensor the last refresh read: same storage, address and
// layout. (A view moved within one storage, e.g. onto a tied or packed
// neighbour, keeps the storage id and version but not the values.) Compared
// field by field on spans: every load asks every derived slot.
bool SameView(const Tensor& t, const TensorIdentity& id) {
  return t.storage()->id() == id.storage_id &&
         reinterpret_cast<uintptr_t>(t.data()) == id.address &&
         t.dtype() == id.dtype && SameDims(t.shape(), id.shape) &&
         SameDims(t.strides(), id.strides);
}

}  // namespace

void TensorSlot::MarkRefreshed() {
  if (source_ == nullptr || !source_->tensor().defined()) return;
  const Tensor& src = source_->tensor();
  // The usual refresh reads the same view as the last one (an in-place
  // load): its identity is already recorded.
  if (!SameView(src, refreshed_source_)) refreshed_source_ = src.Identity();
  refreshed_source_writes_ = src.storage()->writes_outside_refreshes();
  // Writes to the source make this slot stale, and so do writes to this
  // slot's own storage: both must move the epoch.
  source_->tensor().storage()->WatchWrites();
  if (tensor_.defined()) {
    if (!SameView(tensor_, refreshed_self_))
      refreshed_self_ = tensor_.Identity();
    refreshed_writes_ = tensor_.storage()->writes_outside_refreshes();
    tensor_.storage()->WatchWrites();
  } else {
    // Nothing was written: whatever tensor the slot holds next is stale.
    refreshed_self_ = TensorIdentity();
  }
  BumpIdentityEpoch();
}

bool TensorSlot::IsStale() const {
  if (source_ == nullptr) return false;
  const Tensor& src = source_->tensor();
  if (!src.defined()) return true;
  return !SameView(src, refreshed_source_) ||
         src.storage()->writes_outside_refreshes() !=
             refreshed_source_writes_ ||
         OwnStorageWritten();
}

bool TensorSlot::OwnStorageWritten() const {
  return tensor_.defined() &&
         (!SameView(tensor_, refreshed_self_) ||
          tensor_.storage()->writes_outside_refreshes() != refreshed_writes_);
}

std::string TensorSlot::StaleReason() const {
  if (!IsStale()) return "";
  const Tensor& src = source_->tensor();
  if (!src.defined()) return "source is undefined";
  if (!SameView(src, refreshed_source_)) {
    return absl::StrCat("source is now ", src.Identity().ToString(),
                        ", last refreshed from ", refreshed_source_.ToString());
  }
  if (src.storage()->writes_outside_refreshes() != refreshed_source_writes_) {
    return absl::StrFormat(
        "source storage #%d written after the last refresh (%d writes other "
        "than refreshes, %d at the refresh)",
        src.storage()->id(), src.storage()->writes_outside_refreshes(),
        refreshed_source_writes_);
  }
  if (!SameView(tensor_, refreshed_self_)) {
    return absl::StrCat("now ", tensor_.Identity().ToString(),
                        ", not refreshed since (last refreshed as ",
                        refreshed_self_.ToString(), ")");
  }
  return absl::StrFormat(
      "its own storage #%d written after the last refresh (%d writes other "
      "than refreshes, %d at the refresh), not by the refresh",
      tensor_.storage()->id(), tensor_.storage()->writes_outside_refreshes(),
      refreshed_writes_);
}

absl::Status TensorSlot::Refresh() {
  if (!refresh_)
    return absl::FailedPreconditionError("slot has no refresh function");
  RefreshWrites refreshing;
  return refresh_();
}

}  // namespace normgraph
