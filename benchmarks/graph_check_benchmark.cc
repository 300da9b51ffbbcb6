// What the graph manager costs on the CPU backend, for a Gemma3-shaped stack of
// 42 layers (254 nodes, near the 256-node graphs of docs/architecture.md) at
// batch 1:
// - the identity + freshness check of every tracked tensor (the full compare,
// and the fast path every replay takes when nothing moved), against a replay
// of the same graph;
// - the repairs after one module's buffer moved: rebind (patching its node
// arguments) against
//   recapture (re-running capture, instantiation and the snapshot).
// Run: bazel run -c opt //benchmarks:graph_check_benchmark

#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/cpu_stream.h"
#include "core/status_macros.h"
#include "core/step_buffers.h"
#include "core/tensor_util.h"
#include "graph/captured_graph.h"
#include "layers/gemma3_norm_stack.h"

namespace normgraph {
namespace {

struct Fixture {
  explicit Fixture(int64_t hidden) { status = Init(hidden); }

  absl::Status Init(int64_t hidden) {
    Gemma3NormStackConfig c;
    c.num_hidden_layers = 42;
    c.hidden_size = hidden;
    c.head_dim = 128;
    NG_ASSIGN_OR_RETURN(model, Gemma3NormStack::Create(c));
    NG_ASSIGN_OR_RETURN(
        step,
        StepBuffers::Create("graph.b1", model->StepSpecs(1), CpuAllocator()));
    for (size_t i = 0; i < step->size(); ++i) {
      NG_RETURN_IF_ERROR(FillNormal(step->tensor(i), i, 0.0f, 1.0f));
    }
    NG_ASSIGN_OR_RETURN(
        graph, CapturedGraph::Capture(
                   "decode/b1", stream,
                   [this](Stream& s) { return model->Forward(s, *step); },
                   {model.get(), step.get()}));
    return absl::OkStatus();
  }

  // False (and the benchmark skipped with the error) if the set-up failed.
  bool Ready(benchmark::State& state) const {
    if (!status.ok()) state.SkipWithError(status.ToString().c_str());
    return status.ok();
  }

  absl::Status status;
  std::unique_ptr<Gemma3NormStack> model;
  std::unique_ptr<StepBuffers> step;
  CpuStream stream;
  std::unique_ptr<CapturedGraph> graph;
};

void BM_IdentityCheck(benchmark::State& state) {
  Fixture f(state.range(0));
  if (!f.Ready(state)) return;
  std::vector<Violation> violations;
  for (auto _ : state) {
    f.graph->snapshot().Verify(violations);
    benchmark::DoNotOptimize(violations.data());
  }
  if (!violations.empty()) state.SkipWithError("unexpected violation");
  state.counters["nodes"] = f.graph->graph().nodes().size();
  state.counters["tracked"] = f.graph->snapshot().tensors().size();
}
BENCHMARK(BM_IdentityCheck)->Arg(4096);

// The check as every replay runs it: VerifyFast, whose fast path answers when
// nothing moved since the last clean check.
void BM_IdentityCheckFast(benchmark::State& state) {
  Fixture f(state.range(0));
  if (!f.Ready(state)) return;
  IdentitySnapshot snapshot = f.graph->snapshot();
  std::vector<Violation> violations;
  snapshot.VerifyFast(violations);
  for (auto _ : state) {
    snapshot.VerifyFast(violations);
    benchmark::DoNotOptimize(violations.data());
  }
  if (!violations.empty()) state.SkipWithError("unexpected violation");
  state.counters["nodes"] = f.graph->graph().nodes().size();
  state.counters["tracked"] = f.graph->snapshot().tensors().size();
  state.counters["fast_checks"] = snapshot.fast_checks();
}
BENCHMARK(BM_IdentityCheckFast)->Arg(4096);

void BM_ReplayUnchecked(benchmark::State& state) {
  Fixture f(state.range(0));
  if (!f.Ready(state)) return;
  f.graph->set_policy(ReplayPolicy::kUnchecked);
  for (auto _ : state) {
    if (!f.graph->Replay().ok()) state.SkipWithError("replay failed");
  }
  state.counters["nodes"] = f.graph->graph().nodes().size();
}
BENCHMARK(BM_ReplayUnchecked)->Arg(4096);

void BM_ReplayChecked(benchmark::State& state) {
  Fixture f(state.range(0));
  if (!f.Ready(state)) return;
  for (auto _ : state) {
    if (!f.graph->Replay().ok()) state.SkipWithError("replay failed");
  }
  const GraphStats& stats = f.graph->stats();
  state.counters["nodes"] = f.graph->graph().nodes().size();
  state.counters["check_ns_per_replay"] =
      stats.checks > 0 ? static_cast<double>(stats.check_ns) / stats.checks
                       : 0.0;
}
BENCHMARK(BM_ReplayChecked)->Arg(4096);

// One module's derived buffer moves (the legacy loader's effect), then the next
// replay repairs it. Timed: the rebind or the recapture only (the replay itself
// is excluded).
void Repair(benchmark::State& state, ReplayPolicy policy) {
  Fixture f(state.range(0));
  if (!f.Ready(state)) return;
  f.graph->set_policy(policy);
  TensorSlot* slot =
      f.model->FindSlot("layers.20.input_layernorm.gemma_weight");
  if (slot == nullptr) {
    state.SkipWithError("no such slot");
    return;
  }
  for (auto _ : state) {
    state.PauseTiming();
    slot->Rebind(*Clone(slot->tensor()));
    const GraphStats before = f.graph->stats();
    state.ResumeTiming();
    if (!f.graph->Replay().ok()) state.SkipWithError("replay failed");
    state.PauseTiming();
    const GraphStats& after = f.graph->stats();
    const int64_t repair_ns = (after.rebind_ns - before.rebind_ns) +
                              (after.capture_ns - before.capture_ns);
    state.SetIterationTime(repair_ns / 1e9);
    state.ResumeTiming();
  }
  state.counters["nodes"] = f.graph->graph().nodes().size();
  state.counters["rebound_args"] = f.graph->stats().rebound_args;
}

void BM_RepairByRebind(benchmark::State& state) {
  Repair(state, ReplayPolicy::kRebind);
}
void BM_RepairByRecapture(benchmark::State& state) {
  Repair(state, ReplayPolicy::kRecapture);
}
BENCHMARK(BM_RepairByRebind)->Arg(4096)->UseManualTime()->Iterations(300);
BENCHMARK(BM_RepairByRecapture)->Arg(4096)->UseManualTime()->Iterations(300);

}  // namespace
}  // namespace normgraph
