#ifndef NORMGRAPH_CORE_TENSOR_UTIL_H_
#define NORMGRAPH_CORE_TENSOR_UTIL_H_

// Host-side tensor helpers: copies with dtype conversion, fills, poisoning,
// comparisons. They take contiguous tensors on any device: for a device tensor
// the data goes through the device's runtime (core/runtime.h), synchronously,
// after all queued device work. Writes count as in-place writes through the
// API (they bump the destination storage's write version).

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace normgraph {

// A contiguous, host-readable block of elements, possibly unaligned (e.g. a
// tensor inside a memory-mapped safetensors file).
struct HostView {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;
};

// The contents of a contiguous CPU tensor as a HostView (use ToHost first for
// a device tensor).
HostView ViewOf(const Tensor& tensor);

// Copies `src` into `dst` (same shape; any device), converting the dtype with
// round-to-nearest-even.
absl::Status CopyInto(const HostView& src, const Tensor& dst);

// Sets every element to `value` (rounded to the dtype).
absl::Status Fill(const Tensor& dst, float value);

// Fills every byte with 0xFF: NaN in f32, bf16 and f16 alike, so an element a
// kernel failed to write can never compare equal to a real result.
absl::Status Poison(const Tensor& dst);

// Fills with normally distributed values (mean `mean`, standard deviation
// `stddev`), rounded to the dtype, from a deterministic generator seeded with
// `seed`.
absl::Status FillNormal(const Tensor& dst, uint64_t seed, float mean,
                        float stddev);

// A new contiguous CPU tensor with the contents of `src` (any device).
absl::StatusOr<Tensor> ToHost(const Tensor& src);

// A new contiguous tensor with the same contents, allocated from `allocator`
// (on its device).
absl::StatusOr<Tensor> CopyTo(const Tensor& src, Allocator& allocator);

// A new contiguous tensor with the same contents on the same device (from its
// runtime's allocator).
absl::StatusOr<Tensor> Clone(const Tensor& src);

// True if both tensors have the same dtype and shape and identical bytes (NaN
// payloads included). Either may live on any device.
bool BitwiseEqual(const Tensor& a, const Tensor& b);

// The elements of a contiguous tensor, as floats (empty if it is not one or
// cannot be read).
std::vector<float> ToFloats(const Tensor& tensor);

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_TENSOR_UTIL_H_
