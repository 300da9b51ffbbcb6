#include "layers/norm_launch.h"

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/kernels.h"

namespace normgraph {
namespace {

struct Rows {
  int64_t count;
  int64_t stride;
};

absl::StatusOr<Rows> RowsOf(absl::string_view module, absl::string_view what,
                            const Tensor& t, int64_t cols) {
  if (!t.defined()) {
    return absl::InvalidArgumentError(
        absl::StrCat(module, ": ", what, " is undefined"));
  }
  const int dim = t.dim();
  if (dim < 1 || t.size(dim - 1) != cols) {
    return absl::InvalidArgumentError(absl::StrCat(
        module, ": ", what, " has shape ", ShapeToString(t.shape()),
        "; its last dimension must be ", cols));
  }
  if (cols > 1 && t.strides()[dim - 1] != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(module, ": ", what, " rows must be contiguous, strides ",
                     ShapeToString(t.strides())));
  }
  // The leading dimensions collapse into rows of one stride. Those of size 1
  // add no rows: their strides are never used ([T, 1, D] with strides
  // [3 D, D, 1] is T rows 3 D apart).
  Rows rows{1, cols};
  int last = -1;  // the innermost leading dimension of size > 1 seen
  for (int d = dim - 2; d >= 0; --d) {
    rows.count *= t.size(d);
    if (t.size(d) == 1) continue;
    if (last < 0) {
      rows.stride = t.strides()[d];
    } else if (t.strides()[d] != t.strides()[last] * t.size(last)) {
      return absl::InvalidArgumentError(absl::StrCat(
          module, ": ", what, " with shape ", ShapeToString(t.shape()),
          " and strides ", ShapeToString(t.strides()),
          " does not collapse into evenly strided rows"));
    }
    last = d;
  }
  if (rows.count <= 1) rows.stride = std::max(rows.stride, cols);
  return rows;
}

absl::Status SameShape(absl::string_view module, absl::string_view what,
                       const Tensor& t, const Tensor& x, bool same_dtype) {
  if (!t.defined() || t.shape() != x.shape()) {
    return absl::InvalidArgumentError(
        absl::StrCat(module, ": ", what, " has shape ",
                     t.defined() ? ShapeToString(t.shape()) : "undefined",
                     ", the input ", ShapeToString(x.shape())));
  }
  if (same_dtype && t.dtype() != x.dtype()) {
    return absl::InvalidArgumentError(
        absl::StrCat(module, ": ", what, " is ", DTypeName(t.dtype()),
                     ", the input ", DTypeName(x.dtype())));
  }
  return absl::OkStatus();
}

}  // namespace

Allocator& AllocatorOf(const NormOptions& options) {
  return options.allocator != nullptr ? *options.allocator : CpuAllocator();
}

absl::Status LaunchNorm(Stream& stream, const NormCall& call) {
  if (!call.weight->defined() || !call.weight->is_contiguous() ||
      call.weight->numel() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        call.module, ": the weight must be a non-empty contiguous tensor, got ",
        call.weight->DebugString()));
  }
  const int64_t cols = call.weight->numel();
  absl::StatusOr<Rows> x_rows = RowsOf(call.module, "input", *call.x, cols);
  if (!x_rows.ok()) return x_rows.status();
  absl::Status ok = SameShape(call.module, "output", *call.out, *call.x, false);
  if (!ok.ok()) return ok;
  absl::StatusOr<Rows> out_rows =
      RowsOf(call.module, "output", *call.out, cols);
  if (!out_rows.ok()) return out_rows.status();

  RmsNormParams p;
  p.x = call.x->data();
  p.weight = call.weight->data();
  p.out = call.out->data();
  p.rows = x_rows->count;
  p.cols = cols;
  p.x_stride = x_rows->stride;
  p.out_stride = out_rows->stride;
  p.eps = call.eps;
  p.x_dtype = call.x->dtype();
  p.weight_dtype = call.weight->dtype();
  p.out_dtype = call.out->dtype();
  p.weight_kind = call.weight_kind;
  p.order = call.order;
  if (call.residual != nullptr) {
    ok = SameShape(call.module, "residual", *call.residual, *call.x, true);
    if (!ok.ok()) return ok;
    absl::StatusOr<Rows> r =
        RowsOf(call.module, "residual", *call.residual, cols);
    if (!r.ok()) return r.status();
    p.residual = call.residual->data();
    p.residual_stride = r->stride;
  }
  if (call.gate != nullptr) {
    ok = SameShape(call.module, "gate", *call.gate, *call.x, true);
    if (!ok.ok()) return ok;
    absl::StatusOr<Rows> g = RowsOf(call.module, "gate", *call.gate, cols);
    if (!g.ok()) return g.status();
    p.gate = call.gate->data();
    p.gate_stride = g->stride;
  }
  if (p.rows == 0) return absl::OkStatus();
  absl::InlinedVector<ArgBinding, 5> args = {
      {&p.x, call.x, Access::kRead},
      {&p.weight, call.weight, Access::kRead},
      {&p.out, call.out, Access::kWrite}};
  if (call.residual != nullptr)
    args.push_back({&p.residual, call.residual, Access::kReadWrite});
  if (call.gate != nullptr) args.push_back({&p.gate, call.gate, Access::kRead});
  absl::Status launched = stream.LaunchRaw(RmsNormKernel(), &p, sizeof p, args);
  if (!launched.ok()) {
    return absl::Status(launched.code(),
                        absl::StrCat(call.module, ": ", launched.message()));
  }
  return absl::OkStatus();
}

}  // namespace normgraph
