#ifndef NORMGRAPH_CORE_TENSOR_H_
#define NORMGRAPH_CORE_TENSOR_H_

// Tensor: a view of a storage (storage, byte offset, shape, strides, dtype),
// like torch.Tensor.
//
// A Tensor value is a handle. Copying it shares the storage; assigning a new
// tensor to a variable (or to a module's slot) rebinds the handle to another
// storage. That rebinding is the bug class normgraph catches, so every tensor
// can report its pointer identity (TensorIdentity).

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/storage.h"

namespace normgraph {

using Shape = absl::InlinedVector<int64_t, 4>;

// "[2, 4096]".
std::string ShapeToString(absl::Span<const int64_t> shape);
// Product of the dimensions, or an error naming `what` if a dimension is
// negative or the product overflows int64.
absl::StatusOr<int64_t> CheckedNumel(absl::Span<const int64_t> shape,
                                     absl::string_view what);

// What a captured graph bakes in about a tensor: which allocation, which
// address, how many bytes, and how it is laid out. Two tensors with equal
// identities are interchangeable for a replay.
struct TensorIdentity {
  uint64_t storage_id = 0;
  // Where the storage lives: an address is only meaningful on its device, and a
  // graph node may only be pointed at memory of the graph's device.
  Device device;
  uintptr_t address = 0;
  size_t bytes = 0;  // bytes the view spans
  DType dtype = DType::kF32;
  Shape shape;
  Shape strides;

  bool operator==(const TensorIdentity& o) const {
    return storage_id == o.storage_id && device == o.device &&
           address == o.address && bytes == o.bytes && dtype == o.dtype &&
           shape == o.shape && strides == o.strides;
  }
  bool operator!=(const TensorIdentity& o) const { return !(*this == o); }
  // True if the device and layout (dtype, shape, strides, bytes) match: a
  // graph node could be pointed at `o` instead by changing only its address.
  bool SameLayout(const TensorIdentity& o) const {
    return device == o.device && dtype == o.dtype && shape == o.shape &&
           strides == o.strides && bytes == o.bytes;
  }
  // "storage #12 @0x55d0c0a1b000 bf16[4096] strides [1] (8192 B)", with " on
  // cuda:0" after the bytes for a storage that is not on the CPU.
  std::string ToString() const;
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor

  // A view of `storage`. The view must lie inside the storage.
  static absl::StatusOr<Tensor> FromStorage(std::shared_ptr<Storage> storage,
                                            size_t offset_bytes, Shape shape,
                                            Shape strides, DType dtype);
  // A new contiguous tensor (uninitialised contents).
  static absl::StatusOr<Tensor> Empty(Allocator& allocator, Shape shape,
                                      DType dtype);

  bool defined() const { return storage_ != nullptr; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  size_t offset_bytes() const { return offset_bytes_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  DType dtype() const { return dtype_; }
  int dim() const { return static_cast<int>(shape_.size()); }
  int64_t size(int d) const { return shape_[d]; }
  // numel, is_contiguous and data are defined inline below: every copy,
  // load and check calls them (a few percent of a fuzzer's time out of line).
  int64_t numel() const;
  // Bytes from the first to one past the last element of the view.
  size_t span_bytes() const;
  bool is_contiguous() const;

  void* data() const;
  template <typename T>
  T* data_as() const {
    return static_cast<T*>(data());
  }

  TensorIdentity Identity() const;

  // A contiguous tensor viewed with another shape of the same element count.
  absl::StatusOr<Tensor> Reshape(Shape shape) const;
  // Elements [start, start + length) along dimension `dim`.
  absl::StatusOr<Tensor> Narrow(int dim, int64_t start, int64_t length) const;

  // "bf16[2, 4096] on storage #12 @0x... (+0 B)"
  std::string DebugString() const;

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_bytes_ = 0;
  Shape shape_;
  Shape strides_;
  DType dtype_ = DType::kF32;
};

Shape ContiguousStrides(absl::Span<const int64_t> shape);

inline int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

inline bool Tensor::is_contiguous() const {
  // Equal to `strides_ == ContiguousStrides(shape_)`, without building the
  // stride vector.
  if (strides_.size() != shape_.size()) return false;
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

inline void* Tensor::data() const {
  if (storage_ == nullptr || storage_->data() == nullptr) return nullptr;
  return static_cast<char*>(storage_->data()) + offset_bytes_;
}

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_TENSOR_H_
