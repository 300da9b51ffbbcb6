// What a weight update costs on the host, where every backend spends it before
// any byte reaches a device: opening a safetensors checkpoint (mmap, the
// header's JSON parsed and every entry validated) and loading a stack of norms
// in place from it on the CPU backend.
// - BM_SafetensorsOpen/tensors:N: a checkpoint of N small tensors (hidden 64),
//   so the time is the header's, per tensor (real checkpoint shards list
//   hundreds to thousands of tensors; the norm loader opens every one);
// - BM_LoadCheckpoint/tensors:N: the same file loaded into a ModuleList of N
//   RMSNorms (the file's bytes are tiny: the per-tensor bookkeeping);
// - BM_LoadCheckpoint256x4096: the 256-norm chain of the GPU benchmarks
//   (hidden 4096, bf16, 2 MiB), loaded on the CPU backend.
// Run: bazel run -c opt //benchmarks:weight_load_benchmark

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "benchmarks/checkpoint_files.h"
#include "layers/module.h"
#include "layers/rms_norm.h"
#include "layers/safetensors/reader.h"
#include "layers/weights.h"

namespace normgraph {
namespace {

// A ModuleList of `n` RMSNorms of `hidden` (bf16 weights) and a checkpoint of
// random weights for it at `path`.
std::unique_ptr<ModuleList> ChainWithCheckpoint(benchmark::State& state, int n,
                                                int64_t hidden,
                                                const std::string& path) {
  auto model = std::make_unique<ModuleList>("model");
  NormOptions options;
  options.weight_dtype = DType::kBF16;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<std::unique_ptr<RmsNorm>> norm =
        RmsNorm::Create(absl::StrCat(i), hidden, options);
    if (!norm.ok()) {
      state.SkipWithError(std::string(norm.status().message()).c_str());
      return nullptr;
    }
    model->Append(*std::move(norm));
  }
  absl::StatusOr<int64_t> written = WriteRandomCheckpoint(*model, path, 5);
  if (!written.ok()) {
    state.SkipWithError(std::string(written.status().message()).c_str());
    return nullptr;
  }
  return model;
}

void BM_SafetensorsOpen(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const std::string path =
      BenchmarkTempPath(absl::StrCat("open_", n, ".safetensors"));
  if (ChainWithCheckpoint(state, n, 64, path) == nullptr) return;
  for (auto _ : state) {
    absl::StatusOr<safetensors::SafetensorsFile> file =
        safetensors::SafetensorsFile::Open(path);
    if (!file.ok() || file->tensors().size() != static_cast<size_t>(n)) {
      state.SkipWithError("open failed");
      return;
    }
    benchmark::DoNotOptimize(file->tensors().data());
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["tensors"] = n;
}
BENCHMARK(BM_SafetensorsOpen)
    ->ArgName("tensors")
    ->Arg(256)
    ->Arg(2048)
    ->Arg(8192)
    ->Unit(benchmark::kMicrosecond);

void LoadLoop(benchmark::State& state, int n, int64_t hidden) {
  const std::string path =
      BenchmarkTempPath(absl::StrCat("load_", n, "x", hidden, ".safetensors"));
  std::unique_ptr<ModuleList> model =
      ChainWithCheckpoint(state, n, hidden, path);
  if (model == nullptr) return;
  for (auto _ : state) {
    absl::StatusOr<LoadReport> report = LoadCheckpoint(*model, path);
    if (!report.ok() || report->loaded != n) {
      state.SkipWithError("load failed");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * hidden * 2);
  state.counters["tensors"] = n;
}

void BM_LoadCheckpoint(benchmark::State& state) {
  LoadLoop(state, static_cast<int>(state.range(0)), 64);
}
BENCHMARK(BM_LoadCheckpoint)
    ->ArgName("tensors")
    ->Arg(256)
    ->Arg(2048)
    ->Unit(benchmark::kMicrosecond);

void BM_LoadCheckpoint256x4096(benchmark::State& state) {
  LoadLoop(state, 256, 4096);
}
BENCHMARK(BM_LoadCheckpoint256x4096)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace normgraph
