#include "kernels/rms_norm_params.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace normgraph {
namespace {

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("rms_norm: ", what));
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
  return absl::OkStatus();
}

absl::Status ValidateCopyParams(const CopyParams& p) {
  if (p.bytes < 0) return absl::InvalidArgumentError("copy: negative size");
  if (p.bytes > 0 && (p.src == nullptr || p.dst == nullptr)) {
    return absl::InvalidArgumentError("copy: null pointer");
  }
  return absl::OkStatus();
}

}  // namespace normgraph
