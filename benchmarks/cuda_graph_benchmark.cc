// normgraph's graph machinery on the CUDA backend, with real CUDA graphs:
//
// - BM_DecodeStackReplay / BM_DecodeStackEager: a 256-norm decode stack (a
//   chain of 256 RMSNorm modules, bf16 [batch, 4096], each norm's output the
//   next one's input: the same stack tools/bench/peers.py gives PyTorch; also
//   at other hidden sizes),
//   replayed as a checked CapturedGraph (fail policy) back to back, with and
//   without programmatic dependent launch, and run eagerly through the
//   launcher. Per step and per node; CUDA events around 100 back-to-back steps.
//   The same graph of copy kernels (copy:1) is the floor a node can reach.
// - BM_GatedDecodeStackReplay: the same chain of 256 gated norms (Qwen3.5's
//   linear-attention norm, the gate one more input of the step), over
//   [rows, hidden]: per value head (hidden 128, rows = tokens x 32 heads) and
//   whole rows; with and without the wide gated kernels.
// - BM_Check: the identity check of chains of 16 to 1024 nodes, alone (the
//   fast path when nothing moved, the full per-tensor compare, and the check
//   when one slot moved) and as a share of the graph's replay.
// - BM_Repair: one module's weight moved (or every module's), repaired by
//   rebind (patching node arguments with cudaGraphExecKernelNodeSetParams) or
//   by recapture (capture + instantiate + snapshot).
// - BM_WeightUpdate / BM_FileRead: a safetensors checkpoint loaded in place
//   into a whole stack on the device (validation, host-to-device copies,
//   derived buffers refreshed), next to a plain read of the same file.
//
// Run: bazel run -c opt --config=cuda //benchmarks:cuda_graph_benchmark

#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "benchmarks/bench_cuda.h"
#include "benchmarks/checkpoint_files.h"
#include "core/cuda/cuda_stream.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/step_buffers.h"
#include "core/stream.h"
#include "core/tensor_util.h"
#include "graph/captured_graph.h"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/kernels.h"
#include "kernels/rms_norm_params.h"
#include "layers/gated_rms_norm.h"
#include "layers/module.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/rms_norm.h"
#include "layers/weights.h"

namespace normgraph {
namespace {

constexpr int64_t kHidden = 4096;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

DeviceRuntime& Cuda() {
  static DeviceRuntime* runtime = [] {
    absl::StatusOr<DeviceRuntime*> r = GetRuntime(Device::Cuda(0));
    if (!r.ok()) {
      std::fprintf(stderr, "no CUDA device: %s\n",
                   r.status().ToString().c_str());
      std::abort();
    }
    return *r;
  }();
  return *runtime;
}

// A chain of `n` RMSNorm modules (or GatedRmsNorm modules, all gated by one
// more input of the step) over [batch, hidden] bf16, on cuda:0, with its step
// buffers and a checked graph of one step.
struct Chain {
  // copy_only: each node copies its input row(s) instead of normalising them
  // (the same graph shape, buffers and launcher: the floor of a node).
  absl::Status Init(int n, int64_t batch, ReplayPolicy policy,
                    bool copy_only = false, int64_t hidden = kHidden,
                    bool gated = false) {
    copy_only_ = copy_only;
    NormOptions options;
    options.weight_dtype = DType::kBF16;
    options.allocator = &Cuda().allocator();
    model = std::make_unique<ModuleList>("model");
    for (int i = 0; i < n; ++i) {
      const std::string name = absl::StrCat(i);
      std::unique_ptr<NormModule> norm;
      if (gated) {
        NG_ASSIGN_OR_RETURN(norm, GatedRmsNorm::Create(name, hidden, options));
      } else {
        NG_ASSIGN_OR_RETURN(norm, RmsNorm::Create(name, hidden, options));
      }
      NG_RETURN_IF_ERROR(
          FillNormal(norm->weight().tensor(), 1000 + i, 1.0f, 0.1f));
      norms.push_back(model->Append(std::move(norm)));
    }
    const Shape shape = {batch, hidden};
    std::vector<StepTensorSpec> buffers = {
        {"x", shape, DType::kBF16, StepRole::kInput},
        {"a", shape, DType::kBF16, StepRole::kWorkspace},
        {"b", shape, DType::kBF16, StepRole::kWorkspace}};
    if (gated) {
      buffers.push_back({"gate", shape, DType::kBF16, StepRole::kInput});
    }
    NG_ASSIGN_OR_RETURN(
        step, StepBuffers::Create(absl::StrCat("graph.b", batch), buffers,
                                  Cuda().allocator()));
    NG_RETURN_IF_ERROR(FillNormal(step->tensor(0), 7, 0.0f, 1.0f));
    if (gated) {
      gate_ = &step->tensor(3);
      NG_RETURN_IF_ERROR(FillNormal(*gate_, 8, 0.0f, 2.0f));
    }
    NG_ASSIGN_OR_RETURN(stream, Cuda().NewStream());
    GraphOptions graph_options;
    graph_options.policy = policy;
    NG_ASSIGN_OR_RETURN(graph, CapturedGraph::Capture(
                                   absl::StrCat("decode/b", batch), *stream,
                                   [this](Stream& s) { return Forward(s); },
                                   {model.get(), step.get()}, graph_options));
    return absl::OkStatus();
  }

  absl::Status Forward(Stream& s) const {
    const Tensor* in = &step->tensor(0);
    for (size_t i = 0; i < norms.size(); ++i) {
      const Tensor* out = &step->tensor(1 + i % 2);
      if (copy_only_) {
        const CopyParams p{in->data(), out->data(),
                           static_cast<int64_t>(in->span_bytes())};
        NG_RETURN_IF_ERROR(s.Launch(
            CopyKernel(), p,
            {{&p.src, in, Access::kRead}, {&p.dst, out, Access::kWrite}}));
      } else if (gate_ != nullptr) {
        NG_RETURN_IF_ERROR(static_cast<const GatedRmsNorm*>(norms[i])->Forward(
            s, *in, *gate_, *out));
      } else {
        NG_RETURN_IF_ERROR(
            static_cast<const RmsNorm*>(norms[i])->Forward(s, *in, *out));
      }
      in = out;
    }
    return absl::OkStatus();
  }

  std::unique_ptr<ModuleList> model;
  std::vector<NormModule*> norms;
  std::unique_ptr<StepBuffers> step;
  std::unique_ptr<Stream> stream;
  std::unique_ptr<CapturedGraph> graph;
  bool copy_only_ = false;
  const Tensor* gate_ = nullptr;  // the gated chain's gate
};

bool Ok(benchmark::State& state, const absl::Status& status) {
  if (!status.ok()) state.SkipWithError(status.ToString().c_str());
  return status.ok();
}

// CUDA events on the chain's stream around `steps` calls of `step` issued
// back to back: seconds per step on the device timeline (steady state: the
// host queues ahead whenever it is faster than the device).
double EventSecondsPerStep(Chain& chain, int steps,
                           const std::function<absl::Status()>& step) {
  cudaStream_t raw = static_cast<CudaStream&>(*chain.stream).raw();
  cudaEvent_t begin, end;
  NG_BENCH_CUDA(cudaEventCreate(&begin));
  NG_BENCH_CUDA(cudaEventCreate(&end));
  NG_BENCH_CUDA(cudaEventRecord(begin, raw));
  for (int i = 0; i < steps; ++i) {
    if (!step().ok()) std::abort();
  }
  NG_BENCH_CUDA(cudaEventRecord(end, raw));
  NG_BENCH_CUDA(cudaEventSynchronize(end));
  float ms = 0.0f;
  NG_BENCH_CUDA(cudaEventElapsedTime(&ms, begin, end));
  NG_BENCH_CUDA(cudaEventDestroy(begin));
  NG_BENCH_CUDA(cudaEventDestroy(end));
  return ms * 1e-3 / steps;
}

// --- the 256-norm decode stack
// ---------------------------------------------------

void BM_DecodeStackReplay(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const bool pdl = state.range(1) != 0;
  const int layout_k = static_cast<int>(state.range(2));  // 0: the plan's
  const bool copy_only = state.range(3) != 0;
  // 0: the plan's choice of clusters (rows split over CTAs), 1: none.
  const int cluster = static_cast<int>(state.range(4));
  const int64_t hidden = state.range(5);
  const bool was = ProgrammaticDependentLaunch();
  SetProgrammaticDependentLaunch(pdl);
  SetRmsNormLayoutOverride(layout_k, 0, 0, cluster);
  Chain chain;
  const absl::Status init =
      chain.Init(256, batch, ReplayPolicy::kFail, copy_only, hidden);
  SetRmsNormLayoutOverride(0, 0);
  SetProgrammaticDependentLaunch(was);
  if (!Ok(state, init)) return;
  CapturedGraph& g = *chain.graph;
  for (int i = 0; i < 20; ++i) {
    if (!Ok(state, g.Replay())) return;
  }
  const GraphStats before = g.stats();
  const int64_t wall0 = NowNs();
  double seconds = 0.0;
  constexpr int kSteps = 100;
  for (auto _ : state) {
    seconds = EventSecondsPerStep(chain, kSteps, [&] { return g.Replay(); });
    state.SetIterationTime(seconds);
  }
  const int64_t wall = NowNs() - wall0;
  const GraphStats& after = g.stats();
  const double replays = static_cast<double>(after.replays - before.replays);
  state.counters["us_per_step"] = seconds * 1e6;
  state.counters["us_per_node"] = seconds * 1e6 / 256;
  state.counters["host_launch_us"] =
      (after.replay_ns - before.replay_ns) / replays / 1e3;
  state.counters["check_us"] =
      (after.check_ns - before.check_ns) / replays / 1e3;
  state.counters["host_wall_us_per_step"] = wall / replays / 1e3;
  state.counters["nodes"] = 256;
  state.counters["batch"] = static_cast<double>(batch);
  state.counters["pdl"] = pdl ? 1 : 0;
  state.counters["k"] = layout_k;
  state.counters["copy_only"] = copy_only ? 1 : 0;
  state.counters["cluster"] = cluster;
  state.counters["hidden"] = static_cast<double>(hidden);
  state.counters["fast_checks"] =
      static_cast<double>(g.snapshot().fast_checks());
}
// The plan's layout at every batch, the same without rows split over clusters
// (cluster:1), then each forced layout (K chunks per thread, no clusters) at a
// few, then the floor: the same graph of copy kernels (copy:1); then other
// hidden sizes (Qwen3.5's 2048, Gemma's 2304, 8192) with and without clusters
// and their floors.
BENCHMARK(BM_DecodeStackReplay)
    ->ArgNames({"batch", "pdl", "k", "copy", "cluster", "hidden"})
    ->ArgsProduct({{1, 2, 4, 8, 16, 32, 64}, {0, 1}, {0}, {0}, {0}, {kHidden}})
    ->ArgsProduct({{1, 2, 4, 8, 16, 32, 64}, {1}, {0}, {0}, {1}, {kHidden}})
    ->ArgsProduct({{1, 8, 64}, {0, 1}, {1, 2, 4}, {0}, {1}, {kHidden}})
    ->ArgsProduct({{1, 8, 64}, {0, 1}, {0}, {1}, {0}, {kHidden}})
    ->ArgsProduct({{1, 8}, {1}, {0}, {0}, {0, 1}, {2048, 2304, 8192}})
    ->ArgsProduct({{1, 8}, {1}, {0}, {1}, {0}, {2048, 2304, 8192}})
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMicrosecond);

// The chain of 256 gated norms, replayed as in BM_DecodeStackReplay (PDL on,
// the plan's layout), with the wide gated kernels where the plan takes them
// (wide:1, the default) or never (wide:0; SetWideGatedKernels).
void BM_GatedDecodeStackReplay(benchmark::State& state) {
  const int64_t rows = state.range(0);
  const int64_t hidden = state.range(1);
  const bool wide = state.range(2) != 0;
  SetWideGatedKernels(wide);
  Chain chain;
  const absl::Status init = chain.Init(256, rows, ReplayPolicy::kFail,
                                       /*copy_only=*/false, hidden,
                                       /*gated=*/true);
  SetWideGatedKernels(true);
  if (!Ok(state, init)) return;
  CapturedGraph& g = *chain.graph;
  for (int i = 0; i < 20; ++i) {
    if (!Ok(state, g.Replay())) return;
  }
  double seconds = 0.0;
  for (auto _ : state) {
    seconds = EventSecondsPerStep(chain, 100, [&] { return g.Replay(); });
    state.SetIterationTime(seconds);
  }
  state.counters["us_per_step"] = seconds * 1e6;
  state.counters["us_per_node"] = seconds * 1e6 / 256;
  state.counters["rows"] = static_cast<double>(rows);
  state.counters["hidden"] = static_cast<double>(hidden);
  state.counters["wide"] = wide ? 1 : 0;
}
// Per value head (Qwen3.5: 32 value heads of 128; tokens 1, 8, 64) and whole
// rows of 4096 (batch 1, 8, 64).
BENCHMARK(BM_GatedDecodeStackReplay)
    ->ArgNames({"rows", "hidden", "wide"})
    ->ArgsProduct({{32, 256, 2048}, {128}, {1, 0}})
    ->ArgsProduct({{1, 8, 64}, {kHidden}, {1, 0}})
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMicrosecond);

void BM_DecodeStackEager(benchmark::State& state) {
  const int64_t batch = state.range(0);
  Chain chain;
  if (!Ok(state, chain.Init(256, batch, ReplayPolicy::kFail))) return;
  for (int i = 0; i < 3; ++i) {
    if (!Ok(state, chain.Forward(*chain.stream))) return;
  }
  double seconds = 0.0;
  for (auto _ : state) {
    seconds = EventSecondsPerStep(chain, 20,
                                  [&] { return chain.Forward(*chain.stream); });
    state.SetIterationTime(seconds);
  }
  state.counters["us_per_step"] = seconds * 1e6;
  state.counters["us_per_node"] = seconds * 1e6 / 256;
  state.counters["batch"] = static_cast<double>(batch);
}
BENCHMARK(BM_DecodeStackEager)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(8)
    ->Arg(64)
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMicrosecond);

// --- the identity check
// --------------------------------------------------------------

// mode 0: nothing moved (VerifyFast's fast path); 1: the full per-tensor
// compare (what every check cost before the fast path); 2: one slot moved
// since the last check (VerifyFast finds it: full compare + the violation).
void BM_Check(benchmark::State& state) {
  const int nodes = static_cast<int>(state.range(0));
  const int mode = static_cast<int>(state.range(1));
  Chain chain;
  if (!Ok(state, chain.Init(nodes, 1, ReplayPolicy::kFail))) return;
  CapturedGraph& g = *chain.graph;
  for (int i = 0; i < 10; ++i) {
    if (!Ok(state, g.Replay())) return;
  }
  const double replay_seconds =
      EventSecondsPerStep(chain, 50, [&] { return g.Replay(); });
  IdentitySnapshot snapshot = g.snapshot();
  std::vector<Violation> violations;
  violations.reserve(8);
  TensorSlot& slot = chain.norms[nodes / 2]->weight().slot();
  const Tensor original = slot.tensor();
  Tensor alternates[2] = {*Clone(original), *Clone(original)};
  snapshot.VerifyFast(violations);
  int64_t found = 0;
  int64_t i = 0;
  // Nothing moved: batches of 64 checks between clock reads (a clock read
  // costs about as much as the fast path). One slot moved: one check per
  // rebind.
  const int batch = mode == 2 ? 1 : 64;
  for (auto _ : state) {
    if (mode == 2) slot.Rebind(alternates[i++ % 2]);
    const int64_t t0 = NowNs();
    for (int b = 0; b < batch; ++b) {
      if (mode == 1) {
        snapshot.Verify(violations);
      } else {
        snapshot.VerifyFast(violations);
      }
      benchmark::DoNotOptimize(violations.data());
    }
    const int64_t t1 = NowNs();
    found += static_cast<int64_t>(violations.size());
    state.SetIterationTime((t1 - t0) * 1e-9 / batch);
  }
  slot.Rebind(original);
  if ((mode == 2) != (found > 0)) {
    state.SkipWithError("unexpected check result");
    return;
  }
  state.counters["nodes"] = nodes;
  state.counters["tracked"] = static_cast<double>(snapshot.tensors().size());
  state.counters["replay_us"] = replay_seconds * 1e6;
  state.counters["fast_checks"] = static_cast<double>(snapshot.fast_checks());
  state.SetLabel(mode == 0   ? "nothing moved (fast path)"
                 : mode == 1 ? "full compare"
                             : "one slot moved");
}
// MinTime counts manual (check) time: 2 ms of 10 ns checks is 200k iterations.
BENCHMARK(BM_Check)
    ->ArgNames({"nodes", "mode"})
    ->ArgsProduct({{16, 64, 256, 1024}, {0, 1, 2}})
    ->UseManualTime()
    ->MinTime(0.002)
    ->Unit(benchmark::kNanosecond);

// --- repairs
// ------------------------------------------------------------------------------

// modules: 1 (one module's weight moved) or 0 (every module's); policy:
// rebind or recapture. Timed: the repair inside the next Replay (rebind_ns or
// capture_ns); the check and the launch are excluded.
void Repair(benchmark::State& state, ReplayPolicy policy) {
  const bool one = state.range(0) == 1;
  Chain chain;
  if (!Ok(state, chain.Init(256, 1, policy))) return;
  CapturedGraph& g = *chain.graph;
  if (!Ok(state, g.Replay())) return;
  std::vector<TensorSlot*> slots;
  std::vector<std::pair<Tensor, Tensor>> alternates;
  for (size_t i = 0; i < chain.norms.size(); ++i) {
    if (one && i != chain.norms.size() / 2) continue;
    TensorSlot& slot = chain.norms[i]->weight().slot();
    slots.push_back(&slot);
    alternates.emplace_back(*Clone(slot.tensor()), *Clone(slot.tensor()));
  }
  int64_t k = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < slots.size(); ++i) {
      slots[i]->Rebind(k % 2 == 0 ? alternates[i].first : alternates[i].second);
    }
    ++k;
    const GraphStats before = g.stats();
    if (!Ok(state, g.Replay())) return;
    const GraphStats& after = g.stats();
    state.SetIterationTime(((after.rebind_ns - before.rebind_ns) +
                            (after.capture_ns - before.capture_ns)) *
                           1e-9);
  }
  if (!chain.stream->Synchronize().ok()) std::abort();
  state.counters["moved"] = static_cast<double>(slots.size());
  state.counters["rebound_args"] =
      static_cast<double>(g.stats().rebound_args) / state.iterations();
  state.counters["nodes"] = 256;
}
void BM_RepairByRebind(benchmark::State& state) {
  Repair(state, ReplayPolicy::kRebind);
}
void BM_RepairByRecapture(benchmark::State& state) {
  Repair(state, ReplayPolicy::kRecapture);
}
BENCHMARK(BM_RepairByRebind)
    ->ArgName("one_module")
    ->Arg(1)
    ->Arg(0)
    ->UseManualTime()
    ->Iterations(200)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RepairByRecapture)
    ->ArgName("one_module")
    ->Arg(1)
    ->Arg(0)
    ->UseManualTime()
    ->Iterations(30)
    ->Unit(benchmark::kMicrosecond);

// --- weight updates
// -----------------------------------------------------------------------

// stack 0: the 256-norm chain; 1: the Qwen3.5-shaped stack (32 layers,
// hidden 4096: zero-centred norms with derived f32 buffers, refreshed on the
// device).
std::unique_ptr<Module> MakeStack(int stack, absl::Status& status) {
  if (stack == 0) {
    auto chain = std::make_unique<Chain>();
    status = chain->Init(256, 1, ReplayPolicy::kFail);
    return std::move(chain->model);
  }
  Qwen35NormStackConfig c;
  c.allocator = &Cuda().allocator();
  absl::StatusOr<std::unique_ptr<Qwen35NormStack>> m =
      Qwen35NormStack::Create(c);
  status = m.status();
  return m.ok() ? std::unique_ptr<Module>(std::move(*m)) : nullptr;
}

void BM_WeightUpdate(benchmark::State& state) {
  absl::Status status;
  std::unique_ptr<Module> model = MakeStack(state.range(0), status);
  if (!Ok(state, status)) return;
  const std::string path = BenchmarkTempPath(
      absl::StrCat("weight_update_", state.range(0), ".safetensors"));
  absl::StatusOr<int64_t> bytes = WriteRandomCheckpoint(*model, path, 5);
  if (!Ok(state, bytes.status())) return;
  for (auto _ : state) {
    absl::StatusOr<LoadReport> r = LoadCheckpoint(*model, path);
    if (!Ok(state, r.status())) return;
    if (!Cuda().Synchronize().ok()) std::abort();
  }
  state.SetBytesProcessed(*bytes * state.iterations());
  state.counters["file_bytes"] = static_cast<double>(*bytes);
  state.SetLabel(state.range(0) == 0 ? "256-norm chain" : "qwen3.5 stack");
}
BENCHMARK(BM_WeightUpdate)
    ->ArgName("stack")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond);

void BM_FileRead(benchmark::State& state) {
  absl::Status status;
  std::unique_ptr<Module> model = MakeStack(state.range(0), status);
  if (!Ok(state, status)) return;
  const std::string path = BenchmarkTempPath(
      absl::StrCat("file_read_", state.range(0), ".safetensors"));
  absl::StatusOr<int64_t> bytes = WriteRandomCheckpoint(*model, path, 5);
  if (!Ok(state, bytes.status())) return;
  std::vector<char> buffer(*bytes);
  for (auto _ : state) {
    std::ifstream f(path, std::ios::binary);
    f.read(buffer.data(), *bytes);
    if (f.gcount() != *bytes) state.SkipWithError("short read");
    benchmark::DoNotOptimize(buffer.data());
  }
  state.SetBytesProcessed(*bytes * state.iterations());
  state.counters["file_bytes"] = static_cast<double>(*bytes);
  state.SetLabel(state.range(0) == 0 ? "256-norm chain" : "qwen3.5 stack");
}
BENCHMARK(BM_FileRead)
    ->ArgName("stack")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace normgraph

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("device", normgraph::bench::DeviceDescription());
  benchmark::AddCustomContext("suite", "cuda_graph_benchmark");
  benchmark::AddCustomContext(
      "pdl_default", normgraph::ProgrammaticDependentLaunch() ? "on" : "off");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
