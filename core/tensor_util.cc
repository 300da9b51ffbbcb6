#include "core/tensor_util.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace normgraph {
namespace {

absl::Status CheckHostContiguous(const Tensor& t, absl::string_view op) {
  if (!t.defined())
    return absl::InvalidArgumentError(absl::StrCat(op, ": undefined tensor"));
  if (t.storage()->device() != Device::Cpu()) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": ", t.DebugString(), " is not on the CPU"));
  }
  if (!t.is_contiguous()) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": ", t.DebugString(), " is not contiguous"));
  }
  return absl::OkStatus();
}

}  // namespace

HostView ViewOf(const Tensor& tensor) {
  return HostView{tensor.data(), tensor.dtype(), tensor.shape()};
}

absl::Status CopyInto(const HostView& src, const Tensor& dst) {
  absl::Status ok = CheckHostContiguous(dst, "CopyInto");
  if (!ok.ok()) return ok;
  if (src.shape != dst.shape()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CopyInto: source shape ", ShapeToString(src.shape),
                     " does not match destination ", dst.DebugString()));
  }
  const int64_t n = dst.numel();
  if (src.dtype == dst.dtype()) {
    if (n > 0) std::memmove(dst.data(), src.data, n * DTypeSize(src.dtype));
  } else {
    for (int64_t i = 0; i < n; ++i) {
      StoreFromFloat(dst.data(), dst.dtype(), i,
                     LoadAsFloat(src.data, src.dtype, i));
    }
  }
  dst.storage()->BumpWriteVersion();
  return absl::OkStatus();
}

absl::Status Fill(const Tensor& dst, float value) {
  absl::Status ok = CheckHostContiguous(dst, "Fill");
  if (!ok.ok()) return ok;
  for (int64_t i = 0; i < dst.numel(); ++i)
    StoreFromFloat(dst.data(), dst.dtype(), i, value);
  dst.storage()->BumpWriteVersion();
  return absl::OkStatus();
}

absl::Status Poison(const Tensor& dst) {
  absl::Status ok = CheckHostContiguous(dst, "Poison");
  if (!ok.ok()) return ok;
  if (dst.numel() > 0)
    std::memset(dst.data(), 0xFF, dst.numel() * DTypeSize(dst.dtype()));
  dst.storage()->BumpWriteVersion();
  return absl::OkStatus();
}

absl::Status FillNormal(const Tensor& dst, uint64_t seed, float mean,
                        float stddev) {
  absl::Status ok = CheckHostContiguous(dst, "FillNormal");
  if (!ok.ok()) return ok;
  // Box-Muller over splitmix64: the same values on every platform and standard
  // library, and cheap to seed (fuzzers fill many tiny tensors).
  uint64_t state = seed;
  auto next = [&state] {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  auto uniform = [&next] {
    return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53;
  };
  for (int64_t i = 0; i < dst.numel(); ++i) {
    const double z = std::sqrt(-2.0 * std::log(uniform())) *
                     std::cos(2.0 * M_PI * uniform());
    StoreFromFloat(dst.data(), dst.dtype(), i,
                   static_cast<float>(mean + stddev * z));
  }
  dst.storage()->BumpWriteVersion();
  return absl::OkStatus();
}

absl::StatusOr<Tensor> Clone(const Tensor& src) {
  absl::Status ok = CheckHostContiguous(src, "Clone");
  if (!ok.ok()) return ok;
  absl::StatusOr<Tensor> out =
      Tensor::Empty(CpuAllocator(), src.shape(), src.dtype());
  if (!out.ok()) return out.status();
  ok = CopyInto(ViewOf(src), *out);
  if (!ok.ok()) return ok;
  return out;
}

bool BitwiseEqual(const Tensor& a, const Tensor& b) {
  if (!CheckHostContiguous(a, "BitwiseEqual").ok() ||
      !CheckHostContiguous(b, "BitwiseEqual").ok()) {
    return false;
  }
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const size_t bytes = a.numel() * DTypeSize(a.dtype());
  return bytes == 0 || std::memcmp(a.data(), b.data(), bytes) == 0;
}

std::vector<float> ToFloats(const Tensor& tensor) {
  std::vector<float> out;
  if (!CheckHostContiguous(tensor, "ToFloats").ok()) return out;
  out.resize(tensor.numel());
  for (int64_t i = 0; i < tensor.numel(); ++i)
    out[i] = LoadAsFloat(tensor.data(), tensor.dtype(), i);
  return out;
}

}  // namespace normgraph
