#include "core/tensor_util.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/runtime.h"
#include "core/status_macros.h"

namespace normgraph {
namespace {

absl::Status CheckContiguous(const Tensor& t, absl::string_view op) {
  if (!t.defined())
    return absl::InvalidArgumentError(absl::StrCat(op, ": undefined tensor"));
  if (!t.is_contiguous()) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": ", t.DebugString(), " is not contiguous"));
  }
  return absl::OkStatus();
}

size_t ByteSize(const Tensor& t) { return t.numel() * DTypeSize(t.dtype()); }

bool OnCpu(const Tensor& t) { return t.storage()->device() == Device::Cpu(); }

// Runs `produce(host)` to write the tensor's bytes: straight into a CPU
// tensor, or into a host buffer that is then copied to the device. Bumps the
// write version.
template <typename F>
absl::Status WriteBytes(const Tensor& dst, absl::string_view op, F produce) {
  NG_RETURN_IF_ERROR(CheckContiguous(dst, op));
  const size_t bytes = ByteSize(dst);
  if (OnCpu(dst)) {
    if (bytes > 0) produce(dst.data());
  } else if (bytes > 0) {
    std::vector<unsigned char> host(bytes);
    produce(host.data());
    NG_ASSIGN_OR_RETURN(DeviceRuntime * runtime, RuntimeOf(*dst.storage()));
    absl::Status copied = runtime->CopyFromHost(dst.data(), host.data(), bytes);
    if (!copied.ok()) {
      return absl::Status(copied.code(),
                          absl::StrCat(op, " into ", dst.DebugString(), ": ",
                                       copied.message()));
    }
  }
  dst.storage()->BumpWriteVersion();
  return absl::OkStatus();
}

// dst[i] = src[i] converted (as LoadAsFloat then StoreFromFloat) for n
// elements, with both dtypes dispatched once per copy instead of per element
// (loads with dtype conversion run this for every parameter).
template <typename Src, typename Dst>
void ConvertElements(const void* src, void* dst, int64_t n) {
  const char* in = static_cast<const char*>(src);
  char* out = static_cast<char*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    Src v;
    std::memcpy(&v, in + i * sizeof(Src), sizeof(Src));
    const Dst d = FromFloat<Dst>(ToFloat(v));
    std::memcpy(out + i * sizeof(Dst), &d, sizeof(Dst));
  }
}

void ConvertElements(const void* src, DType src_dtype, void* dst,
                     DType dst_dtype, int64_t n) {
  WithStorageType(src_dtype, [&](auto from) {
    WithStorageType(dst_dtype, [&](auto to) {
      ConvertElements<decltype(from), decltype(to)>(src, dst, n);
    });
  });
}

}  // namespace

HostView ViewOf(const Tensor& tensor) {
  return HostView{tensor.data(), tensor.dtype(), tensor.shape()};
}

absl::Status CopyInto(const HostView& src, const Tensor& dst) {
  if (dst.defined() && src.shape != dst.shape()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CopyInto: source shape ", ShapeToString(src.shape),
                     " does not match destination ", dst.DebugString()));
  }
  if (dst.defined() && src.dtype == dst.dtype() && !OnCpu(dst)) {
    // Same dtype into a device: no host-side staging copy of our own.
    NG_RETURN_IF_ERROR(CheckContiguous(dst, "CopyInto"));
    const size_t bytes = ByteSize(dst);
    if (bytes > 0) {
      NG_ASSIGN_OR_RETURN(DeviceRuntime * runtime, RuntimeOf(*dst.storage()));
      absl::Status copied = runtime->CopyFromHost(dst.data(), src.data, bytes);
      if (!copied.ok()) {
        return absl::Status(copied.code(),
                            absl::StrCat("CopyInto ", dst.DebugString(), ": ",
                                         copied.message()));
      }
    }
    dst.storage()->BumpWriteVersion();
    return absl::OkStatus();
  }
  return WriteBytes(dst, "CopyInto", [&](void* out) {
    const int64_t n = dst.numel();
    if (src.dtype == dst.dtype()) {
      std::memmove(out, src.data, n * DTypeSize(src.dtype));
      return;
    }
    ConvertElements(src.data, src.dtype, out, dst.dtype(), n);
  });
}

absl::Status Fill(const Tensor& dst, float value) {
  return WriteBytes(dst, "Fill", [&](void* out) {
    for (int64_t i = 0; i < dst.numel(); ++i)
      StoreFromFloat(out, dst.dtype(), i, value);
  });
}

absl::Status Poison(const Tensor& dst) {
  return WriteBytes(dst, "Poison",
                    [&](void* out) { std::memset(out, 0xFF, ByteSize(dst)); });
}

absl::Status FillNormal(const Tensor& dst, uint64_t seed, float mean,
                        float stddev) {
  return WriteBytes(dst, "FillNormal", [&](void* out) {
    // Box-Muller over splitmix64: the same values on every platform and
    // standard library, and cheap to seed (fuzzers fill many tiny tensors).
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
      // Drawn in a fixed order (the two operands of a product may be
      // evaluated in either).
      const double u1 = uniform();
      const double u2 = uniform();
      const double z =
          std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
      StoreFromFloat(out, dst.dtype(), i,
                     static_cast<float>(mean + stddev * z));
    }
  });
}

absl::StatusOr<Tensor> ToHost(const Tensor& src) {
  NG_RETURN_IF_ERROR(CheckContiguous(src, "ToHost"));
  NG_ASSIGN_OR_RETURN(Tensor out,
                      Tensor::Empty(CpuAllocator(), src.shape(), src.dtype()));
  const size_t bytes = ByteSize(src);
  if (bytes > 0) {
    NG_ASSIGN_OR_RETURN(DeviceRuntime * runtime, RuntimeOf(*src.storage()));
    absl::Status copied = runtime->CopyToHost(out.data(), src.data(), bytes);
    if (!copied.ok()) {
      return absl::Status(
          copied.code(),
          absl::StrCat("reading ", src.DebugString(), ": ", copied.message()));
    }
  }
  return out;
}

absl::StatusOr<Tensor> CopyTo(const Tensor& src, Allocator& allocator) {
  NG_ASSIGN_OR_RETURN(Tensor host, ToHost(src));
  if (&allocator == &CpuAllocator()) return host;
  NG_ASSIGN_OR_RETURN(Tensor out,
                      Tensor::Empty(allocator, src.shape(), src.dtype()));
  NG_RETURN_IF_ERROR(CopyInto(ViewOf(host), out));
  return out;
}

absl::StatusOr<Tensor> Clone(const Tensor& src) {
  if (!src.defined())
    return absl::InvalidArgumentError("Clone: undefined tensor");
  NG_ASSIGN_OR_RETURN(DeviceRuntime * runtime, RuntimeOf(*src.storage()));
  return CopyTo(src, runtime->allocator());
}

bool BitwiseEqual(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.dtype() != b.dtype() ||
      a.shape() != b.shape()) {
    return false;
  }
  const size_t bytes = ByteSize(a);
  if (OnCpu(a) && OnCpu(b) && a.is_contiguous() && b.is_contiguous()) {
    return bytes == 0 || std::memcmp(a.data(), b.data(), bytes) == 0;
  }
  absl::StatusOr<Tensor> ha = ToHost(a);
  absl::StatusOr<Tensor> hb = ToHost(b);
  if (!ha.ok() || !hb.ok()) return false;
  return bytes == 0 || std::memcmp(ha->data(), hb->data(), bytes) == 0;
}

std::vector<float> ToFloats(const Tensor& tensor) {
  std::vector<float> out;
  absl::StatusOr<Tensor> host = ToHost(tensor);
  if (!host.ok()) return out;
  out.resize(host->numel());
  for (int64_t i = 0; i < host->numel(); ++i)
    out[i] = LoadAsFloat(host->data(), host->dtype(), i);
  return out;
}

}  // namespace normgraph
