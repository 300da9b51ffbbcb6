#include "core/tensor.h"

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace normgraph {

std::string ShapeToString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<int64_t> CheckedNumel(absl::Span<const int64_t> shape,
                                     absl::string_view what) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": negative dimension in shape ", ShapeToString(shape)));
    }
    if (d != 0 && n > INT64_MAX / d) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": element count of shape ", ShapeToString(shape),
                       " overflows"));
    }
    n *= d;
  }
  return n;
}

Shape ContiguousStrides(absl::Span<const int64_t> shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

std::string TensorIdentity::ToString() const {
  // Storage ids start at 1: 0 is an undefined tensor's identity.
  if (storage_id == 0) return "an undefined tensor";
  return absl::StrFormat(
      "storage #%d @%#x %s%s strides %s (%d B)%s", storage_id, address,
      DTypeName(dtype), ShapeToString(shape), ShapeToString(strides), bytes,
      device.type == DeviceType::kCpu ? "" : " on " + device.ToString());
}

absl::StatusOr<Tensor> Tensor::FromStorage(std::shared_ptr<Storage> storage,
                                           size_t offset_bytes, Shape shape,
                                           Shape strides, DType dtype) {
  if (storage == nullptr)
    return absl::InvalidArgumentError("tensor view of a null storage");
  if (shape.size() != strides.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape ", ShapeToString(shape), " and strides ",
                     ShapeToString(strides), " have different ranks"));
  }
  absl::StatusOr<int64_t> numel = CheckedNumel(shape, "tensor view");
  if (!numel.ok()) return numel.status();
  Tensor t;
  t.storage_ = std::move(storage);
  t.offset_bytes_ = offset_bytes;
  t.shape_ = std::move(shape);
  t.strides_ = std::move(strides);
  t.dtype_ = dtype;
  for (int64_t s : t.strides_) {
    if (s < 0)
      return absl::InvalidArgumentError("negative strides are not supported");
  }
  // The span in checked arithmetic (span_bytes() trusts a view it describes
  // to fit in its storage, which a wrapped sum would fake), used for the
  // bounds check below.
  uint64_t span = 0;
  if (*numel > 0) {
    uint64_t last = 0;
    bool overflow = false;
    for (size_t i = 0; i < t.shape_.size() && !overflow; ++i) {
      uint64_t step;
      overflow =
          __builtin_mul_overflow(static_cast<uint64_t>(t.shape_[i] - 1),
                                 static_cast<uint64_t>(t.strides_[i]), &step) ||
          __builtin_add_overflow(last, step, &last);
    }
    overflow = overflow || __builtin_add_overflow(last, 1, &last) ||
               __builtin_mul_overflow(last, DTypeSize(dtype), &span) ||
               span > static_cast<uint64_t>(PTRDIFF_MAX);
    if (overflow) {
      return absl::OutOfRangeError(absl::StrFormat(
          "view %s%s strides %s spans more bytes than an address space holds",
          DTypeName(dtype), ShapeToString(t.shape_),
          ShapeToString(t.strides_)));
    }
  }
  const size_t end = offset_bytes + span;
  if (end < offset_bytes || end > t.storage_->bytes()) {
    return absl::OutOfRangeError(absl::StrFormat(
        "view %s%s at byte offset %d spans %d bytes, past the end of %s",
        DTypeName(dtype), ShapeToString(t.shape_), offset_bytes, span,
        t.storage_->DebugString()));
  }
  return t;
}

absl::StatusOr<Tensor> Tensor::Empty(Allocator& allocator, Shape shape,
                                     DType dtype) {
  absl::StatusOr<int64_t> numel = CheckedNumel(shape, "Tensor::Empty");
  if (!numel.ok()) return numel.status();
  if (*numel > PTRDIFF_MAX / static_cast<int64_t>(DTypeSize(dtype))) {
    return absl::InvalidArgumentError(
        absl::StrCat("Tensor::Empty: ", DTypeName(dtype), ShapeToString(shape),
                     " needs more bytes than an address space holds"));
  }
  absl::StatusOr<std::shared_ptr<Storage>> storage = Storage::Allocate(
      allocator, static_cast<size_t>(*numel) * DTypeSize(dtype));
  if (!storage.ok()) return storage.status();
  // A contiguous view of all of a new storage of its size: valid by
  // construction (FromStorage's checks would only repeat the ones above).
  Tensor t;
  t.storage_ = *std::move(storage);
  t.strides_ = ContiguousStrides(shape);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  return t;
}

size_t Tensor::span_bytes() const {
  if (numel() == 0) return 0;
  int64_t last = 0;
  for (size_t i = 0; i < shape_.size(); ++i)
    last += (shape_[i] - 1) * strides_[i];
  return static_cast<size_t>(last + 1) * DTypeSize(dtype_);
}

TensorIdentity Tensor::Identity() const {
  TensorIdentity id;
  if (storage_ != nullptr) {
    id.storage_id = storage_->id();
    id.device = storage_->device();
  }
  id.address = reinterpret_cast<uintptr_t>(data());
  id.bytes = storage_ != nullptr ? span_bytes() : 0;
  id.dtype = dtype_;
  id.shape = shape_;
  id.strides = strides_;
  return id;
}

absl::StatusOr<Tensor> Tensor::Reshape(Shape shape) const {
  if (!is_contiguous()) {
    return absl::FailedPreconditionError(
        absl::StrCat("reshape of non-contiguous tensor ", DebugString()));
  }
  absl::StatusOr<int64_t> n = CheckedNumel(shape, "reshape");
  if (!n.ok()) return n.status();
  if (*n != numel()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot reshape ", ShapeToString(shape_), " to ",
                     ShapeToString(shape)));
  }
  Shape strides = ContiguousStrides(shape);
  return FromStorage(storage_, offset_bytes_, std::move(shape),
                     std::move(strides), dtype_);
}

absl::StatusOr<Tensor> Tensor::Narrow(int dim, int64_t start,
                                      int64_t length) const {
  if (dim < 0 || dim >= this->dim()) {
    return absl::InvalidArgumentError(
        absl::StrCat("narrow: no dimension ", dim, " in ", DebugString()));
  }
  if (start < 0 || length < 0 || start + length > shape_[dim]) {
    return absl::OutOfRangeError(
        absl::StrCat("narrow: [", start, ", ", start + length,
                     ") is outside dimension ", dim, " of ", DebugString()));
  }
  Shape shape = shape_;
  shape[dim] = length;
  // An empty narrow (or any narrow of an empty tensor) stays where the
  // tensor starts: at the end of a strided dimension, or of a storage of no
  // bytes, its start could lie past the storage.
  const size_t offset =
      length == 0 || numel() == 0
          ? offset_bytes_
          : offset_bytes_ +
                static_cast<size_t>(start * strides_[dim]) * DTypeSize(dtype_);
  return FromStorage(storage_, offset, std::move(shape), strides_, dtype_);
}

std::string Tensor::DebugString() const {
  if (!defined()) return "undefined tensor";
  return absl::StrFormat("%s%s on %s (+%d B)", DTypeName(dtype_),
                         ShapeToString(shape_), storage_->DebugString(),
                         offset_bytes_);
}

}  // namespace normgraph
