#include "kernels/rms_norm_params.h"

#include <array>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace normgraph {
namespace {

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("rms_norm: ", what));
}

// The bytes a row-strided operand spans.
struct Span {
  const char* name;
  uintptr_t begin = 0;
  uintptr_t end = 0;  // one past the last byte
  int64_t stride = 0;
  int64_t rows = 0;
  size_t elem = 0;
  bool present() const { return begin != 0; }
  bool Overlaps(const Span& o) const {
    return present() && o.present() && begin < o.end && o.begin < end;
  }
  // Whether a byte of one operand's rows is a byte of the other's. Rows of
  // one byte stride whose bytes fit within it (column slices of one buffer,
  // e.g. x and gate halves of a fused projection's output) are told apart
  // exactly; anything else counts as sharing wherever the spans overlap.
  bool SharesBytes(const Span& o) const {
    if (!Overlaps(o)) return false;
    const int64_t s = RowBytes(), os = o.RowBytes();
    const int64_t w = Width(), ow = o.Width();
    // One row has no stride of its own: it takes the other's.
    const int64_t step = rows > 1 ? s : os;
    if (step <= 0 || (rows > 1 && o.rows > 1 && s != os) || w > step ||
        ow > step) {
      return true;
    }
    // Byte x of row i equals byte y of the other's row i' iff
    // x - y = d + k step, k = i' - i: some d + k step in (-ow, w), for k in
    // [-(rows - 1), o.rows - 1]. Only the two values congruent to d modulo
    // step nearest zero can lie in that window (it is at most 2 step wide).
    const int64_t d = static_cast<int64_t>(o.begin - begin);
    const int64_t r = ((d % step) + step) % step;
    for (const int64_t v : {r, r - step}) {
      if (v <= -ow || v >= w) continue;
      const int64_t k = (v - d) / step;
      if (k >= -(rows - 1) && k <= o.rows - 1) return true;
    }
    return false;
  }
  int64_t RowBytes() const { return stride * static_cast<int64_t>(elem); }
  // The bytes of one row.
  int64_t Width() const {
    return static_cast<int64_t>(end - begin) - (rows - 1) * RowBytes();
  }
  // Element (i, j) of both lies at the same address: each element is read and
  // written by the same step of either backend's kernel, which is safe. (One
  // row has no stride to compare.)
  bool SameElements(const Span& o) const {
    return begin == o.begin && elem == o.elem &&
           (stride == o.stride || (rows == 1 && o.rows == 1));
  }
};

Span SpanOf(const char* name, const void* p, int64_t rows, int64_t stride,
            int64_t cols, DType dtype) {
  Span s;
  s.name = name;
  if (p == nullptr || rows == 0) return s;
  s.begin = reinterpret_cast<uintptr_t>(p);
  s.elem = DTypeSize(dtype);
  s.stride = stride;
  s.rows = rows;
  s.end = s.begin + static_cast<uintptr_t>((rows - 1) * stride + cols) * s.elem;
  return s;
}

// Every operand's span, in RmsNormKernel's pointer-field order: x, weight,
// gate, residual, out (an absent operand's span is empty).
std::array<Span, 5> OperandSpans(const RmsNormParams& p) {
  return {SpanOf("x", p.x, p.rows, p.x_stride, p.cols, p.x_dtype),
          SpanOf("weight", p.weight, 1, p.cols, p.cols,
                 p.weight_kind == NormWeight::kScale ? DType::kF32
                                                     : p.weight_dtype),
          SpanOf("gate", p.gate, p.rows, p.gate_stride, p.cols, p.x_dtype),
          SpanOf("residual", p.residual, p.rows, p.residual_stride, p.cols,
                 p.x_dtype),
          SpanOf("out", p.out, p.rows, p.out_stride, p.cols, p.out_dtype)};
}

}  // namespace

absl::Status ValidateRmsNormParams(const RmsNormParams& p) {
  if (p.rows < 0) return Invalid("negative row count");
  if (p.cols < 1) return Invalid("rows must have at least one element");
  if (p.rows > 0 &&
      (p.x == nullptr || p.out == nullptr || p.weight == nullptr)) {
    return Invalid("x, weight and out are required");
  }
  if (p.x_stride < p.cols || p.out_stride < p.cols) {
    return Invalid(absl::StrCat("row strides (x ", p.x_stride, ", out ",
                                p.out_stride,
                                ") must be at least the row length ", p.cols));
  }
  if (p.residual != nullptr && p.residual_stride < p.cols)
    return Invalid("residual stride");
  if (p.gate != nullptr && p.gate_stride < p.cols)
    return Invalid("gate stride");
  if (!(p.eps >= 0.0f) || !std::isfinite(p.eps))
    return Invalid("eps must be finite and >= 0");
  if (p.weight_kind == NormWeight::kScale) {
    if (p.weight_dtype != DType::kF32)
      return Invalid("a scale (1 + w) must be float32");
    if (p.gate != nullptr)
      return Invalid("the gated norm multiplies by w, not by a scale");
  }
  const DType promoted = PromoteTypes(p.x_dtype, p.weight_dtype);
  if (p.out_dtype != p.x_dtype && p.out_dtype != promoted) {
    return Invalid(
        absl::StrCat("output dtype ", DTypeName(p.out_dtype),
                     " must be the activation dtype or the promoted type ",
                     DTypeName(promoted)));
  }
  if (p.gate != nullptr && p.out_dtype != p.x_dtype) {
    return Invalid("the gated norm writes the activation dtype");
  }
  // Sizes that overflow the address arithmetic below cannot be real tensors
  // (nor can rows that long, whatever the row count).
  const int64_t kMaxSpan = int64_t{1} << 56;
  if (p.cols > kMaxSpan) return Invalid("rows are too long");
  // The GPU's streaming kernel sums a thread's chunks in a fixed-depth tree
  // that holds rows up to 2^35 elements: far past any hidden size.
  const int64_t kMaxCols = int64_t{1} << 32;
  if (p.rows > 0 && p.cols > kMaxCols) {
    return Invalid(absl::StrCat("rows of ", p.cols,
                                " elements are too long (at most 2^32)"));
  }
  for (int64_t stride :
       {p.x_stride, p.out_stride, p.residual_stride, p.gate_stride}) {
    if (p.rows > 0 && stride > kMaxSpan / p.rows) {
      return Invalid("rows x stride is too large");
    }
  }
  // Operands the kernel writes (out, residual) may share memory with another
  // operand only element for element (in place); any other overlap would
  // make the result depend on the order in which a backend visits elements.
  // Rows that interleave without sharing a byte (column slices of one buffer)
  // do not overlap.
  const std::array<Span, 5> spans = OperandSpans(p);
  const Span& x = spans[0];
  const Span& weight = spans[1];
  const Span& gate = spans[2];
  const Span& residual = spans[3];
  const Span& out = spans[4];
  // The residual is written in the pass that sums the row; the gate is read
  // in the pass that writes the output, which one backend runs after the
  // whole row's sum and the other with each thread's own elements: sharing
  // memory, they would read different gates.
  if (residual.SharesBytes(gate)) {
    return Invalid(
        "the gate shares memory with the residual (which the kernel writes)");
  }
  for (const Span* written : {&out, &residual}) {
    if (written->Overlaps(weight)) {
      return Invalid(absl::StrCat(written->name, " overlaps the weight"));
    }
    for (const Span* other : {&x, &gate, &residual}) {
      if (other == written || !written->SharesBytes(*other)) continue;
      if (!written->SameElements(*other)) {
        return Invalid(absl::StrCat(
            written->name, " partially overlaps ", other->name,
            "; operands may only alias element for element (in place)"));
      }
    }
  }
  return absl::OkStatus();
}

size_t RmsNormArgBytes(const RmsNormParams& p, size_t index) {
  if (p.rows == 0 || index >= 5) return 0;
  const Span s = OperandSpans(p)[index];
  return static_cast<size_t>(s.end - s.begin);
}

size_t CopyArgBytes(const CopyParams& p, size_t) {
  return static_cast<size_t>(p.bytes);
}

absl::Status ValidateCopyParams(const CopyParams& p) {
  if (p.bytes < 0) return absl::InvalidArgumentError("copy: negative size");
  if (p.bytes > 0 && (p.src == nullptr || p.dst == nullptr)) {
    return absl::InvalidArgumentError("copy: null pointer");
  }
  const auto src = reinterpret_cast<uintptr_t>(p.src);
  const auto dst = reinterpret_cast<uintptr_t>(p.dst);
  if (p.bytes > 0 && src != dst && src < dst + p.bytes && dst < src + p.bytes) {
    return absl::InvalidArgumentError(
        "copy: source and destination partially overlap");
  }
  return absl::OkStatus();
}

}  // namespace normgraph
