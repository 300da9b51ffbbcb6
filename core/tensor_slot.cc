#include "core/tensor_slot.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace normgraph {
namespace {

// The addresses of the first bytes of t's elements, in index order.
std::vector<uintptr_t> ElementAddresses(const Tensor& t) {
  std::vector<uintptr_t> out;
  out.reserve(t.numel());
  const uintptr_t base = reinterpret_cast<uintptr_t>(t.data());
  const int64_t es = static_cast<int64_t>(DTypeSize(t.dtype()));
  std::vector<int64_t> index(t.shape().size(), 0);
  for (int64_t n = 0; n < t.numel(); ++n) {
    int64_t offset = 0;
    for (size_t d = 0; d < index.size(); ++d)
      offset += index[d] * t.strides()[d];
    out.push_back(base + offset * es);
    for (size_t d = index.size(); d-- > 0;) {
      if (++index[d] < t.shape()[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

// Whether a and b have a byte in common (by address: the same memory in two
// storages counts). Spans first; element by element only when the spans
// meet and a layout has gaps.
bool SharesBytes(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.numel() == 0 || b.numel() == 0)
    return false;
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a.data());
  const uintptr_t b0 = reinterpret_cast<uintptr_t>(b.data());
  if (a0 + a.span_bytes() <= b0 || b0 + b.span_bytes() <= a0) return false;
  if (a.is_contiguous() && b.is_contiguous()) return true;
  std::vector<uintptr_t> starts = ElementAddresses(a);
  std::sort(starts.begin(), starts.end());
  const uintptr_t a_size = DTypeSize(a.dtype());
  const uintptr_t b_size = DTypeSize(b.dtype());
  for (const uintptr_t begin : ElementAddresses(b)) {
    // The last element of a starting before this one ends, and its end.
    auto it = std::lower_bound(starts.begin(), starts.end(), begin + b_size);
    if (it != starts.begin() && *std::prev(it) + a_size > begin) return true;
  }
  return false;
}

}  // namespace

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
  // Writing the buffer would change the values it is computed from (and the
  // source's write count would not show it: a refresh writes for no slot).
  if (SharesBytes(tensor_, source_->tensor())) {
    return absl::FailedPreconditionError(
        absl::StrCat("derived buffer ", tensor_.Identity().ToString(),
                     " shares bytes with its source ",
                     source_->tensor().Identity().ToString(),
                     ": refreshing it would overwrite what it reads"));
  }
  RefreshWrites refreshing;
  return refresh_();
}

}  // namespace normgraph
