#include "core/tensor_slot.h"

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
  source_ = source;
  refresh_ = std::move(refresh);
  BumpIdentityEpoch();
}

void TensorSlot::MarkRefreshed() {
  if (source_ == nullptr || !source_->tensor().defined()) return;
  refreshed_source_ = source_->tensor().Identity();
  refreshed_source_version_ = source_->tensor().storage()->write_version();
  // Writes to the source make this slot stale: they must move the epoch.
  source_->tensor().storage()->WatchWrites();
  BumpIdentityEpoch();
}

namespace {

// The source is the tensor the last refresh read: same storage, address and
// layout. (A view moved within one storage, e.g. onto a tied or packed
// neighbour, keeps the storage id and version but not the values.)
bool SameView(const Tensor& t, const TensorIdentity& id) {
  return t.storage()->id() == id.storage_id &&
         reinterpret_cast<uintptr_t>(t.data()) == id.address &&
         t.dtype() == id.dtype && t.shape() == id.shape &&
         t.strides() == id.strides;
}

}  // namespace

bool TensorSlot::IsStale() const {
  if (source_ == nullptr) return false;
  const Tensor& src = source_->tensor();
  if (!src.defined()) return true;
  return !SameView(src, refreshed_source_) ||
         src.storage()->write_version() != refreshed_source_version_;
}

std::string TensorSlot::StaleReason() const {
  if (!IsStale()) return "";
  const Tensor& src = source_->tensor();
  if (!src.defined()) return "source is undefined";
  if (!SameView(src, refreshed_source_)) {
    return absl::StrCat("source is now ", src.Identity().ToString(),
                        ", last refreshed from ", refreshed_source_.ToString());
  }
  return absl::StrFormat(
      "source storage #%d written (write version %d) after the last refresh "
      "(at version %d)",
      src.storage()->id(), src.storage()->write_version(),
      refreshed_source_version_);
}

absl::Status TensorSlot::Refresh() {
  if (!refresh_)
    return absl::FailedPreconditionError("slot has no refresh function");
  return refresh_();
}

}  // namespace normgraph
