// The CPU reference kernels and the CPU backend, per variant, next to memcpy
// of the same bytes measured in the same benchmark: bytes moved per second
// (each activation read once and written once, the residual read and written
// back where there is one), and the share of memcpy's rate. The reference is
// written for exact numerics and clarity, not speed; this says what the CPU
// backend (the fuzzers, CI) pays per element. Only the ratios travel between
// machines.
//
// - BM_RmsNormCpu: the reference kernel called directly;
// - BM_RmsNormCpuBackend: the same launch through the launcher (CpuStream:
//   validation, argument binding, then the kernel);
// - BM_Memcpy: memcpy of the same bytes (half read, half written).
//
// Counters: bytes_per_second, memcpy_bytes_per_second, share_of_memcpy.
// Run: bazel run -c opt //benchmarks:cpu_norm_benchmark

#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/cpu_stream.h"
#include "core/dtype.h"
#include "core/storage.h"
#include "core/tensor.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/kernels.h"
#include "kernels/rms_norm_params.h"

namespace normgraph {
namespace {

enum Variant : int { kRms, kZeroCentred, kGated, kFusedAdd };

const char* VariantName(Variant v) {
  return v == kRms           ? "rms"
         : v == kZeroCentred ? "zero_centred"
         : v == kGated       ? "gated"
                             : "fused_add";
}

// memcpy's rate over `bytes` read + written (a buffer of bytes / 2 copied),
// best of a few runs.
double MemcpyBytesPerSecond(int64_t bytes) {
  const size_t half = static_cast<size_t>(bytes / 2);
  std::vector<char> src(half, 1), dst(half, 0);
  double best = 0.0;
  for (int i = 0; i < 20; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(dst.data(), src.data(), half);
    benchmark::DoNotOptimize(dst.data());
    const auto t1 = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(t1 - t0).count();
    if (s > 0) best = std::max(best, 2.0 * half / s);
  }
  return best;
}

// Operands of one benchmark (activations and weight in `dtype`, bf16 or
// f16), as tensors on the CPU (the launcher binds tensors) and raw params for
// the direct call.
struct Operands {
  Operands(int64_t rows, int64_t cols, Variant variant, DType dtype) {
    auto make = [&](Shape shape, DType dtype) {
      return *Tensor::Empty(CpuAllocator(), shape, dtype);
    };
    x = make({rows, cols}, dtype);
    out = make({rows, cols}, dtype);
    gate = make({rows, cols}, dtype);
    residual = make({rows, cols}, dtype);
    weight = make({cols}, dtype);
    scale = make({cols}, DType::kF32);
    std::mt19937 rng(1);
    std::normal_distribution<float> dist;
    for (Tensor* t : {&x, &gate, &residual}) {
      for (int64_t i = 0; i < rows * cols; ++i)
        StoreFromFloat(t->data(), dtype, i, dist(rng));
    }
    for (int64_t j = 0; j < cols; ++j) {
      StoreFromFloat(weight.data(), dtype, j, 1.0f + 0.1f * dist(rng));
      static_cast<float*>(scale.data())[j] = 1.0f + 0.1f * dist(rng);
    }
    p.x_dtype = p.out_dtype = dtype;
    p.weight_dtype = dtype;
    p.x = x.data();
    p.out = out.data();
    p.weight = weight.data();
    p.rows = rows;
    p.cols = p.x_stride = p.out_stride = p.gate_stride = p.residual_stride =
        cols;
    bytes_per_element = 4;
    if (variant == kZeroCentred) {
      p.weight = scale.data();
      p.weight_dtype = DType::kF32;
      p.weight_kind = NormWeight::kScale;
    } else if (variant == kGated) {
      p.gate = gate.data();
      bytes_per_element = 6;
    } else if (variant == kFusedAdd) {
      p.residual = residual.data();
      bytes_per_element = 8;
    }
    bytes = rows * cols * bytes_per_element;
  }

  absl::Status Launch(Stream& stream) {
    RmsNormParams d = p;
    const Tensor* w = d.weight_kind == NormWeight::kScale ? &scale : &weight;
    std::vector<ArgBinding> args = {{&d.x, &x, Access::kRead},
                                    {&d.weight, w, Access::kRead},
                                    {&d.out, &out, Access::kWrite}};
    if (d.gate != nullptr) args.push_back({&d.gate, &gate, Access::kRead});
    if (d.residual != nullptr) {
      args.push_back({&d.residual, &residual, Access::kReadWrite});
    }
    return stream.LaunchRaw(RmsNormKernel(), &d, sizeof d, args);
  }

  Tensor x, out, gate, residual, weight, scale;
  RmsNormParams p;
  int64_t bytes_per_element = 4;
  int64_t bytes = 0;
};

DType DTypeArg(int64_t arg) { return arg == 0 ? DType::kBF16 : DType::kF16; }

void Report(benchmark::State& state, const Operands& ops, Variant variant) {
  state.SetBytesProcessed(state.iterations() * ops.bytes);
  const double memcpy_rate = MemcpyBytesPerSecond(ops.bytes);
  state.counters["memcpy_bytes_per_second"] = memcpy_rate;
  // bytes_per_second as a rate counter, divided by memcpy's.
  state.counters["share_of_memcpy"] = benchmark::Counter(
      static_cast<double>(state.iterations() * ops.bytes) / memcpy_rate,
      benchmark::Counter::kIsRate);
  state.SetLabel(std::string(VariantName(variant)) + " " +
                 std::string(DTypeName(ops.p.x_dtype)));
}

void BM_RmsNormCpu(benchmark::State& state) {
  const auto variant = static_cast<Variant>(state.range(2));
  Operands ops(state.range(0), state.range(1), variant,
               DTypeArg(state.range(3)));
  for (auto _ : state) {
    RmsNormCpu(ops.p);
    benchmark::DoNotOptimize(ops.out.data());
  }
  Report(state, ops, variant);
}

void BM_RmsNormCpuBackend(benchmark::State& state) {
  const auto variant = static_cast<Variant>(state.range(2));
  Operands ops(state.range(0), state.range(1), variant, DType::kBF16);
  CpuStream stream;
  for (auto _ : state) {
    if (!ops.Launch(stream).ok()) state.SkipWithError("launch failed");
    benchmark::DoNotOptimize(ops.out.data());
  }
  Report(state, ops, variant);
}

void BM_Memcpy(benchmark::State& state) {
  const int64_t bytes = state.range(0) * state.range(1) * 4;
  std::vector<char> src(bytes / 2, 1), dst(bytes / 2, 0);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}

// dtype: 0 bf16, 1 f16.
BENCHMARK(BM_RmsNormCpu)
    ->ArgNames({"rows", "hidden", "variant", "dtype"})
    ->ArgsProduct({{1, 64, 2048},
                   {2048, 4096},
                   {kRms, kZeroCentred, kGated, kFusedAdd},
                   {0, 1}});
BENCHMARK(BM_RmsNormCpuBackend)
    ->ArgNames({"rows", "hidden", "variant"})
    ->ArgsProduct({{1, 64}, {4096}, {kRms, kZeroCentred, kGated, kFusedAdd}});
BENCHMARK(BM_Memcpy)
    ->ArgNames({"rows", "hidden"})
    ->ArgsProduct({{1, 64, 2048}, {2048, 4096}});

}  // namespace
}  // namespace normgraph
