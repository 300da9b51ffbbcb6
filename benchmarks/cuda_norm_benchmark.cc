// The CUDA norm kernels per variant and dtype, over decode, per-head and
// prefill shapes, next to the ceiling: a device-to-device copy of the same
// bytes (cudaMemcpyAsync), timed in the same benchmark.
//
// Method (see benchmarks/RESULTS.md): each benchmark captures a CUDA graph of
// `reps` launches (the launch the kernels' own plan chooses, no programmatic
// dependent launch) rotating over operand sets whose total exceeds the 60 MiB
// L2 where the shape allows it (up to 256 sets; decode-sized rows stay
// L2-resident, as they are in a real decode step), replays it twice to warm
// up, then seven times between CUDA events; the time per call is the median
// replay over reps. Inputs are random normal values (never zeros), weights
// near 1. The copy ceiling does the same with memcpy nodes moving as many
// bytes (read + written) as the kernel.
//
// Bytes: activations read (x, residual, gate) and written (out, residual) once
// each, plus the weight once per call.
//
// Counters: bytes_per_second (the kernel), copy_bytes_per_second (the
// ceiling), share_of_copy (their ratio), us_per_call, rows, hidden.
// The layout-sweep benchmarks force each launch layout (K chunks per thread,
// block size) on a few shapes, to check the automatic choice.
//
// Run: bazel run -c opt --config=cuda //benchmarks:cuda_norm_benchmark

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "benchmarks/bench_cuda.h"
#include "core/cuda/cuda_launch.h"
#include "core/dtype.h"
#include "core/kernel_def.h"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/rms_norm_params.h"

namespace normgraph {
namespace {

struct Variant {
  const char* name;
  NormWeight kind;
  RoundingOrder order;
  bool gated;
  bool residual;
};

// Llama (HF order), the single-rounding engine order, zero-centred (Gemma,
// Qwen3.5; f32 `1 + w`), gated (Qwen3.5 linear attention), fused residual add
// + zero-centred norm (Qwen3.5 decoder layer).
const Variant kVariants[] = {
    {"rms", NormWeight::kMultiply, RoundingOrder::kHuggingFace, false, false},
    {"rms_engine", NormWeight::kMultiply, RoundingOrder::kEngine, false, false},
    {"zero_centred", NormWeight::kScale, RoundingOrder::kHuggingFace, false,
     false},
    {"gated", NormWeight::kMultiply, RoundingOrder::kHuggingFace, true, false},
    {"fused_add", NormWeight::kScale, RoundingOrder::kHuggingFace, false, true},
};

struct Shape {
  int64_t rows;
  int64_t cols;
  const char* regime;  // decode, per_head, prefill
};

cudaStream_t Stream() {
  static cudaStream_t stream = [] {
    cudaStream_t s;
    NG_BENCH_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  }();
  return stream;
}

struct Operands {
  std::vector<void*> x, residual, gate, out;
  void* weight = nullptr;
};

// Launch `params` as the plan says (clusters included), on the stream (no
// PDL: isolated calls).
void LaunchPlanned(const RmsNormParams& params) {
  CudaLaunch plan;
  PlanRmsNormCuda(&params, &plan);
  plan.programmatic_dependency = false;
  void* args[] = {const_cast<RmsNormParams*>(&params)};
  NG_BENCH_CUDA(LaunchCudaPlan(plan, args, Stream()));
}

void RunNorm(benchmark::State& state, const Variant& v, DType x_dtype,
             Shape shape, int layout_k, int layout_block) {
  const int64_t rows = shape.rows, cols = shape.cols;
  const DType w_dtype = v.kind == NormWeight::kScale ? DType::kF32 : x_dtype;
  const size_t elem = DTypeSize(x_dtype);
  const size_t tensor_bytes = static_cast<size_t>(rows * cols) * elem;
  const int operands = 2 + (v.residual ? 1 : 0) + (v.gated ? 1 : 0);
  const size_t set_bytes = tensor_bytes * operands;
  // Rotate past the L2 (60 MiB) by a wide margin where the arena allows.
  bench::Arena& arena = bench::Arena::Get();
  arena.Reset();
  int sets = static_cast<int>(
      std::min<size_t>(256, (size_t{256} << 20) / set_bytes + 1));
  sets = std::max(1, std::min<int>(sets, static_cast<int>(arena.capacity() / 2 /
                                                          (set_bytes + 4096))));
  Operands ops;
  uint64_t seed = 1;
  ops.weight = arena.Take(cols * DTypeSize(w_dtype));
  bench::FillRandom(ops.weight, cols, w_dtype, seed++, 1.0f, 0.1f, Stream());
  for (int s = 0; s < sets; ++s) {
    ops.x.push_back(arena.Take(tensor_bytes));
    ops.out.push_back(arena.Take(tensor_bytes));
    bench::FillRandom(ops.x.back(), rows * cols, x_dtype, seed++, 0.0f, 1.0f,
                      Stream());
    bench::FillRandom(ops.out.back(), rows * cols, x_dtype, seed++, 0.0f, 1.0f,
                      Stream());
    if (v.residual) {
      ops.residual.push_back(arena.Take(tensor_bytes));
      bench::FillRandom(ops.residual.back(), rows * cols, x_dtype, seed++, 0.0f,
                        1.0f, Stream());
    }
    if (v.gated) {
      ops.gate.push_back(arena.Take(tensor_bytes));
      bench::FillRandom(ops.gate.back(), rows * cols, x_dtype, seed++, 0.0f,
                        3.0f, Stream());
    }
  }
  NG_BENCH_CUDA(cudaStreamSynchronize(Stream()));

  const double bytes = static_cast<double>(tensor_bytes) *
                           (2 + (v.residual ? 2 : 0) + (v.gated ? 1 : 0)) +
                       static_cast<double>(cols * DTypeSize(w_dtype));
  // About 2 ms of work per replay.
  const double estimate = bytes / 3e12 + 3e-6;
  const int reps = static_cast<int>(
      std::max<double>(8, std::min<double>(4096, 2e-3 / estimate)));

  RmsNormParams p;
  p.rows = rows;
  p.cols = cols;
  p.x_stride = p.out_stride = p.gate_stride = p.residual_stride = cols;
  p.x_dtype = x_dtype;
  p.weight_dtype = w_dtype;
  p.out_dtype = x_dtype;
  p.weight_kind = v.kind;
  p.order = v.order;
  p.weight = ops.weight;
  SetRmsNormLayoutOverride(layout_k, layout_block);
  {
    RmsNormParams d = p;
    d.x = ops.x[0];
    d.out = ops.out[0];
    d.gate = v.gated ? ops.gate[0] : nullptr;
    d.residual = v.residual ? ops.residual[0] : nullptr;
    const absl::Status valid = ValidateRmsNormParams(d);
    if (!valid.ok()) {
      SetRmsNormLayoutOverride(0, 0);
      state.SkipWithError(valid.ToString().c_str());
      return;
    }
    state.SetLabel(DescribeRmsNormLaunch(d));
  }
  const double seconds =
      bench::MedianSecondsPerCall(Stream(), reps, [&](int i) {
        const int s = i % sets;
        RmsNormParams d = p;
        d.x = ops.x[s];
        d.out = ops.out[s];
        d.gate = v.gated ? ops.gate[s] : nullptr;
        d.residual = v.residual ? ops.residual[s] : nullptr;
        LaunchPlanned(d);
      });
  SetRmsNormLayoutOverride(0, 0);
  NG_BENCH_CUDA(cudaGetLastError());
  // The ceiling: memcpy moving the same bytes (half read, half written).
  const size_t copy_bytes = static_cast<size_t>(bytes / 2) / 16 * 16;
  std::vector<void*> src, dst;
  for (int s = 0; s < sets; ++s) {
    src.push_back(ops.x[s]);
    dst.push_back(ops.out[s]);
  }
  // x and out hold tensor_bytes each; a larger copy takes fresh buffers.
  if (copy_bytes > tensor_bytes) {
    src.clear();
    dst.clear();
    arena.Reset();
    const int copy_sets = std::max<int>(
        1, std::min<int>(sets, static_cast<int>(arena.capacity() / 2 /
                                                (copy_bytes + 4096))));
    for (int s = 0; s < copy_sets; ++s) {
      src.push_back(arena.Take(copy_bytes));
      dst.push_back(arena.Take(copy_bytes));
      bench::FillRandom(src.back(), copy_bytes / 2, DType::kBF16, 99 + s, 0.0f,
                        1.0f, Stream());
    }
  }
  const double copy_bw =
      bench::CopyBytesPerSecond(Stream(), src, dst, copy_bytes, reps);

  for (auto _ : state) state.SetIterationTime(seconds);
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
  const double bw = bytes / seconds;
  state.counters["copy_bytes_per_second"] = copy_bw;
  state.counters["share_of_copy"] = bw / copy_bw;
  state.counters["us_per_call"] = seconds * 1e6;
  state.counters["rows"] = static_cast<double>(rows);
  state.counters["hidden"] = static_cast<double>(cols);
  state.counters["sets"] = sets;
}

const char* DTypeTag(DType d) {
  return d == DType::kF32 ? "f32" : d == DType::kBF16 ? "bf16" : "f16";
}

void Register() {
  std::vector<Shape> decode, per_head, prefill;
  for (int64_t rows : {1, 8, 64}) {
    for (int64_t cols : {2048, 4096, 8192})
      decode.push_back({rows, cols, "decode"});
  }
  // Per-head q/k norms: tokens x 32 heads rows of head_dim 128 and 256.
  for (int64_t tokens : {1, 64, 4096}) {
    for (int64_t head_dim : {128, 256}) {
      per_head.push_back({tokens * 32, head_dim, "per_head"});
    }
  }
  for (int64_t rows : {1024, 4096, 32768}) {
    for (int64_t cols : {1536, 2048, 4096, 8192, 16384}) {
      prefill.push_back({rows, cols, "prefill"});
    }
  }
  struct DTypeVariants {
    DType dtype;
    std::vector<const Variant*> variants;
  };
  const std::vector<DTypeVariants> plan = {
      {DType::kBF16,
       {&kVariants[0], &kVariants[1], &kVariants[2], &kVariants[3],
        &kVariants[4]}},
      {DType::kF16,
       {&kVariants[0], &kVariants[2], &kVariants[3], &kVariants[4]}},
      {DType::kF32, {&kVariants[0], &kVariants[2], &kVariants[4]}},
  };
  for (const auto* shapes : {&decode, &per_head, &prefill}) {
    for (const DTypeVariants& dv : plan) {
      for (const Variant* v : dv.variants) {
        if (shapes == &per_head && v->residual) continue;
        for (const Shape& s : *shapes) {
          const std::string name =
              absl::StrCat("BM_Norm/", v->name, "/", DTypeTag(dv.dtype), "/",
                           s.regime, "/rows:", s.rows, "/hidden:", s.cols);
          const Variant variant = *v;
          const DType dtype = dv.dtype;
          benchmark::RegisterBenchmark(
              name.c_str(),
              [variant, dtype, s](benchmark::State& state) {
                RunNorm(state, variant, dtype, s, 0, 0);
              })
              ->UseManualTime()
              ->Iterations(1)
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
  // Layout sweep: K chunks per thread x block size, on bf16 prefill shapes
  // (and the fused add, which holds two operands a chunk, on rows of C < P
  // chunks too: 1536, 2560 and 5120 fill 3/4 and 5/8 of P, 3584 and 7168 7/8),
  // a few f32 ones and the gated norm's.
  struct Sweep {
    const Variant* variant;
    DType dtype;
    std::vector<Shape> shapes;
  };
  const std::vector<Shape> bf16_shapes = {{4096, 1536, "prefill"},
                                          {32768, 4096, "prefill"},
                                          {4096, 16384, "prefill"},
                                          {131072, 128, "per_head"}};
  const std::vector<Sweep> sweeps = {
      {&kVariants[0], DType::kBF16, bf16_shapes},
      {&kVariants[2], DType::kBF16, bf16_shapes},
      {&kVariants[4],
       DType::kBF16,
       {{4096, 1536, "prefill"},
        {32768, 1536, "prefill"},
        {32768, 2560, "prefill"},
        {32768, 3584, "prefill"},
        {32768, 4096, "prefill"},
        {16384, 5120, "prefill"},
        {16384, 7168, "prefill"},
        {4096, 16384, "prefill"}}},
      {&kVariants[0],
       DType::kF32,
       {{4096, 1536, "prefill"},
        {32768, 4096, "prefill"},
        {4096, 16384, "prefill"}}},
      // The gated norm: three operands and silu an element, of which only
      // K = 4 takes the silu table.
      {&kVariants[3],
       DType::kBF16,
       {{4096, 1536, "prefill"},
        {4096, 4096, "prefill"},
        {32768, 4096, "prefill"},
        {4096, 16384, "prefill"}}},
  };
  for (const Sweep& sweep : sweeps) {
    for (const Shape& s : sweep.shapes) {
      for (int k : {1, 2, 4}) {
        for (int block : {128, 256, 512, 1024}) {
          if (block == 1024 && k > 1) continue;  // compiled for 512 at most
          if (block == 128 && k == 1) continue;
          const std::string name = absl::StrCat(
              "BM_Layout/", sweep.variant->name, "/", DTypeTag(sweep.dtype),
              "/", s.regime, "/rows:", s.rows, "/hidden:", s.cols, "/K:", k,
              "/block:", block);
          const Variant variant = *sweep.variant;
          const DType dtype = sweep.dtype;
          benchmark::RegisterBenchmark(
              name.c_str(),
              [variant, dtype, s, k, block](benchmark::State& state) {
                RunNorm(state, variant, dtype, s, k, block);
              })
              ->UseManualTime()
              ->Iterations(1)
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
}

}  // namespace
}  // namespace normgraph

int main(int argc, char** argv) {
  normgraph::Register();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("device", normgraph::bench::DeviceDescription());
  benchmark::AddCustomContext("suite", "cuda_norm_benchmark");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
