#include "layers/zero_centered_rms_norm.h"

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/storage.h"
#include "core/tensor_util.h"

namespace normgraph {
namespace {

// out[j] = 1 + w[j] for n elements of type T (float, Bf16 or F16), read as
// LoadAsFloat reads them. The dtype is dispatched once per buffer, not per
// element: this runs on every load of every zero-centred norm, and in
// coverage-instrumented fuzzer builds each per-element call and compare was
// traced.
template <typename T>
void OnePlusWeight(const void* w, int64_t n, float* out) {
  const char* bytes = static_cast<const char*>(w);
  for (int64_t j = 0; j < n; ++j) {
    T v;
    std::memcpy(&v, bytes + j * sizeof(T), sizeof(T));
    out[j] = 1.0f + ToFloat(v);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ZeroCenteredRmsNorm>>
ZeroCenteredRmsNorm::Create(std::string name, int64_t hidden,
                            const NormOptions& options) {
  std::unique_ptr<ZeroCenteredRmsNorm> m(
      new ZeroCenteredRmsNorm(std::move(name), hidden, options));
  absl::Status ok = m->Init();
  if (!ok.ok()) return ok;
  return m;
}

absl::Status ZeroCenteredRmsNorm::Init() {
  absl::Status ok = InitWeight(0.0f);
  if (!ok.ok()) return ok;
  absl::StatusOr<Tensor> scale =
      Tensor::Empty(AllocatorOf(options()), {hidden()}, DType::kF32);
  if (!scale.ok()) return scale.status();
  gemma_weight_ = AddBuffer("gemma_weight", *std::move(scale));
  gemma_weight_->DeriveFrom(&weight().slot(),
                            [this] { return RefreshGemmaWeight(); });
  weight().set_after_load([this] { return RefreshGemmaWeight(); });
  return RefreshGemmaWeight();
}

absl::Status ZeroCenteredRmsNorm::ComputeOnePlusWeight(
    const Tensor& dst) const {
  const Tensor& w = weight().tensor();
  // An offloaded weight (or buffer) has no tensor: say so, rather than blame
  // the layout or read through a null storage.
  if (!w.defined() || !dst.defined()) {
    return absl::FailedPreconditionError(
        absl::StrCat(full_name(), ": ", w.defined() ? "gemma_weight" : "weight",
                     " has no tensor bound: gemma_weight cannot be computed"));
  }
  // Its writes are a refresh's (core/storage.h): they leave the derived
  // buffers and sources that share the buffer's storage as they were.
  RefreshWrites refreshing;
  if (dst.dtype() != DType::kF32 || dst.numel() != w.numel() ||
      !dst.is_contiguous()) {
    return absl::InternalError(absl::StrCat(
        full_name(),
        ": gemma_weight has the wrong layout: ", dst.DebugString()));
  }
  if (!w.is_contiguous()) {
    // 1 + w is computed over the weight's bytes in order: a strided weight
    // (a view rebound into the slot) would give the wrong values, or read
    // past a short storage.
    return absl::FailedPreconditionError(
        absl::StrCat(full_name(), ": weight is not contiguous (",
                     w.DebugString(), "): gemma_weight cannot be computed"));
  }
  if (w.storage()->device() == Device::Cpu() &&
      dst.storage()->device() == Device::Cpu()) {
    float* out = dst.data_as<float>();
    WithStorageType(w.dtype(), [&](auto element) {
      OnePlusWeight<decltype(element)>(w.data(), w.numel(), out);
    });
    dst.storage()->BumpWriteVersion();
    return absl::OkStatus();
  }
  // On a device: compute on the host from the weight's current contents, then
  // write the buffer in place. (In a weight update's transfer batch the read
  // is answered from the bytes the update just staged, and the write is
  // queued: core/runtime.h.)
  absl::StatusOr<Tensor> host_w = ToHost(w);
  if (!host_w.ok()) {
    return absl::Status(host_w.status().code(),
                        absl::StrCat(full_name(), ": reading the weight back: ",
                                     host_w.status().message()));
  }
  std::vector<float> one_plus_w(w.numel());
  WithStorageType(w.dtype(), [&](auto element) {
    OnePlusWeight<decltype(element)>(host_w->data(), w.numel(),
                                     one_plus_w.data());
  });
  return CopyInto(HostView{one_plus_w.data(), DType::kF32, dst.shape()}, dst);
}

absl::Status ZeroCenteredRmsNorm::RefreshGemmaWeight() {
  absl::Status ok = ComputeOnePlusWeight(gemma_weight_->tensor());
  if (!ok.ok()) return ok;
  gemma_weight_->MarkRefreshed();
  return absl::OkStatus();
}

}  // namespace normgraph
