// The CPU reference kernel's vectorized paths (each of RmsNormCpuOnPath's that
// this CPU has: AVX-512, AVX2) against its definition (RmsNormCpuScalar,
// norm_numerics.h one element at a time), bit for bit:
// outputs and the residual written back, on every variant, dtype, order,
// shape, stride and value family (random, wide dynamic range, tiny and huge
// magnitudes, subnormals, zeros, infinities, NaNs, rows whose blocks are and
// are not exactly summable).
//
// Input: 6 header bytes (x dtype, weight kind and dtype, order and residual,
// rows, cols, value family), then bytes that seed and perturb the values.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/rms_norm_params.h"

namespace normgraph {
namespace {

uint64_t Next(uint64_t& state) {
  state += 0x9E3779B97F4A7C15ull;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// One value of `family` as raw bits of `dtype`.
uint32_t Value(uint64_t& state, int family, DType dtype) {
  const uint64_t r = Next(state);
  float f;
  switch (family) {
    case 0: {  // normal-ish
      f = static_cast<float>(static_cast<int32_t>(r >> 40) % 30000) / 10000.0f;
      break;
    }
    case 1: {  // wide dynamic range
      const int e = static_cast<int>(r % 60) - 40;
      f = std::ldexp(1.0f + static_cast<float>((r >> 8) & 0xFFFF) / 65536.0f,
                     e) *
          ((r >> 30) & 1 ? -1.0f : 1.0f);
      break;
    }
    case 2: {  // raw bit patterns: subnormals, infinities, NaNs, everything
      const uint32_t bits = static_cast<uint32_t>(r);
      if (dtype == DType::kF32) return bits;
      return bits & 0xFFFF;
    }
    default: {  // mostly equal values, some zeros (exactly summable blocks)
      const int k = static_cast<int>(r % 8);
      f = k == 0 ? 0.0f : (k < 4 ? 0.5f : -1.25f);
      break;
    }
  }
  if (dtype == DType::kF32) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    return bits;
  }
  return dtype == DType::kBF16 ? FloatToBf16Bits(f) : FloatToF16Bits(f);
}

struct Buffer {
  std::vector<uint8_t> bytes;
  DType dtype;
  void Fill(uint64_t& state, int family, int64_t n) {
    bytes.assign(n * DTypeSize(dtype) + 8, 0);
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t v = Value(state, family, dtype);
      std::memcpy(bytes.data() + i * DTypeSize(dtype), &v, DTypeSize(dtype));
    }
  }
};

}  // namespace
}  // namespace normgraph

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace normgraph;
  if (size < 6) return 0;
  static constexpr DType kDTypes[] = {DType::kBF16, DType::kF16, DType::kF32};
  RmsNormParams p;
  p.x_dtype = kDTypes[data[0] % 3];
  p.out_dtype =
      (data[0] >> 2) & 1 ? PromoteTypes(p.x_dtype, DType::kF32) : p.x_dtype;
  p.weight_kind = (data[1] & 1) ? NormWeight::kScale : NormWeight::kMultiply;
  p.weight_dtype =
      p.weight_kind == NormWeight::kScale
          ? DType::kF32
          : ((data[1] >> 1) & 1 ? p.x_dtype : kDTypes[(data[1] >> 2) % 3]);
  p.order =
      (data[2] & 1) ? RoundingOrder::kEngine : RoundingOrder::kHuggingFace;
  const bool residual = (data[2] >> 1) & 1;
  const bool gated = (data[2] >> 2) & 1;
  p.rows = 1 + data[3] % 4;
  // Lengths around the 8-lane vectors and the 64-element blocks, and longer.
  static constexpr int64_t kCols[] = {1, 7, 8, 9, 63, 64, 65, 128, 200, 4096};
  p.cols = (data[4] & 0x80) ? 1 + data[4] % 300 : kCols[data[4] % 10];
  const int family = data[5] % 4;
  const int64_t pad = (data[5] >> 2) % 3;  // strided rows
  p.x_stride = p.out_stride = p.residual_stride = p.gate_stride = p.cols + pad;
  p.eps = (data[5] >> 4) & 1 ? 1e-5f : 1e-6f;
  uint64_t state = 0;
  for (size_t i = 6; i < size; ++i) state = state * 131 + data[i];
  const int64_t n = p.rows * p.x_stride;

  Buffer x{{}, p.x_dtype}, w{{}, p.weight_dtype}, gate{{}, p.x_dtype},
      res{{}, p.x_dtype};
  x.Fill(state, family, n);
  w.Fill(state, family == 2 ? 2 : 0, p.cols);
  gate.Fill(state, family, n);
  res.Fill(state, family, n);
  std::vector<uint8_t> out_b(n * DTypeSize(p.out_dtype) + 8, 0xAB);
  std::vector<uint8_t> res_b = res.bytes;
  p.x = x.bytes.data();
  p.weight = w.bytes.data();
  p.gate = gated ? gate.bytes.data() : nullptr;
  RmsNormParams b = p;
  b.out = out_b.data();
  b.residual = residual ? res_b.data() : nullptr;
  // Validated with out (and the residual) in place: without them every input
  // is refused ("x, weight and out are required") and nothing runs.
  if (!ValidateRmsNormParams(b).ok()) return 0;
  RmsNormCpuScalar(b);
  // Every vectorized path this CPU has, not only the one RmsNormCpu picks.
  for (const CpuPath path : {CpuPath::kAvx512, CpuPath::kAvx2}) {
    std::vector<uint8_t> out_a(out_b.size(), 0xAB), res_a = res.bytes;
    RmsNormParams a = p;
    a.out = out_a.data();
    a.residual = residual ? res_a.data() : nullptr;
    if (!RmsNormCpuOnPath(path, a)) continue;
    if (out_a == out_b && res_a == res_b) continue;
    std::fprintf(stderr,
                 "cpu_kernel_fuzzer: the %s path differs from "
                 "RmsNormCpuScalar: %s x, %s weight (%s), %s out, %s order, "
                 "residual %d, gate %d, %lld x %lld, stride %lld, family %d: "
                 "%s\n",
                 path == CpuPath::kAvx512 ? "AVX-512" : "AVX2",
                 std::string(DTypeName(p.x_dtype)).c_str(),
                 std::string(DTypeName(p.weight_dtype)).c_str(),
                 p.weight_kind == NormWeight::kScale ? "scale" : "multiply",
                 std::string(DTypeName(p.out_dtype)).c_str(),
                 p.order == RoundingOrder::kEngine ? "engine" : "hf", residual,
                 gated, static_cast<long long>(p.rows),
                 static_cast<long long>(p.cols),
                 static_cast<long long>(p.x_stride), family,
                 out_a != out_b ? "outputs" : "residuals");
    std::abort();
  }
  return 0;
}
