// The CPU reference kernels, per variant, reported as bytes moved per second
// (the input read once and the output written once, plus the residual read and
// written back where there is one). The reference is written for clarity and
// exact numerics, not speed; this measures what the CPU backend (the fuzzers,
// CI) pays per element.

#include <cstdint>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/dtype.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/rms_norm_params.h"

namespace normgraph {
namespace {

enum Variant : int { kRms, kZeroCentred, kGated, kFusedAdd };

void BM_RmsNormCpu(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  const auto variant = static_cast<Variant>(state.range(2));
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  std::vector<Bf16> x(rows * cols), gate(rows * cols), residual(rows * cols),
      out(rows * cols), weight(cols);
  std::vector<float> scale(cols);
  for (auto* v : {&x, &gate, &residual}) {
    for (Bf16& e : *v) e = FromFloat<Bf16>(dist(rng));
  }
  for (int64_t j = 0; j < cols; ++j) {
    weight[j] = FromFloat<Bf16>(1.0f + 0.1f * dist(rng));
    scale[j] = 1.0f + 0.1f * dist(rng);
  }
  RmsNormParams p;
  p.x = x.data();
  p.out = out.data();
  p.weight = weight.data();
  p.rows = rows;
  p.cols = p.x_stride = p.out_stride = p.gate_stride = p.residual_stride = cols;
  int64_t bytes_per_element = 4;
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
  for (auto _ : state) {
    RmsNormCpu(p);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * bytes_per_element);
  state.SetLabel(variant == kRms           ? "rms"
                 : variant == kZeroCentred ? "zero-centred"
                 : variant == kGated       ? "gated"
                                           : "fused-add");
}

BENCHMARK(BM_RmsNormCpu)
    ->ArgNames({"rows", "hidden", "variant"})
    ->ArgsProduct({{1, 64},
                   {2048, 4096},
                   {kRms, kZeroCentred, kGated, kFusedAdd}});

}  // namespace
}  // namespace normgraph
