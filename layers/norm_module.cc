#include "layers/norm_module.h"

#include "absl/strings/str_cat.h"

namespace normgraph {

absl::Status NormModule::InitWeight(float initial_value) {
  if (hidden_ < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(name(), ": hidden size must be >= 1, got ", hidden_));
  }
  absl::StatusOr<Tensor> w =
      Tensor::Empty(AllocatorOf(options_), {hidden_}, options_.weight_dtype);
  if (!w.ok()) return w.status();
  absl::Status filled = Fill(*w, initial_value);
  if (!filled.ok()) return filled;
  weight_ = AddParameter("weight", *std::move(w));
  return absl::OkStatus();
}

absl::Status NormModule::Run(Stream& stream, const Tensor& x,
                             const Tensor* residual, const Tensor* gate,
                             const Tensor& out) const {
  const std::string& module = full_name();
  if (out.defined() && out.dtype() != OutputDType(x.dtype())) {
    return absl::InvalidArgumentError(
        absl::StrCat(module, ": output is ", DTypeName(out.dtype()),
                     ", expected ", DTypeName(OutputDType(x.dtype()))));
  }
  NormCall call;
  call.module = module;
  call.x = &x;
  call.out = &out;
  call.residual = residual;
  call.gate = gate;
  call.weight = &KernelWeight();
  call.weight_kind = KernelWeightKind();
  call.eps = options_.eps;
  call.order = options_.order;
  return LaunchNorm(stream, call);
}

}  // namespace normgraph
