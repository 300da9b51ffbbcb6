// normgraph: the main job. Builds a Qwen3.5- (or Gemma3-) shaped norm stack,
// loads weights from a safetensors checkpoint, captures decode graphs for every
// batch bucket, then runs RL-style cycles: a weight update, then replays at
// random batch sizes, each compared with eager execution bit for bit. With
// --inject=legacy-loader it runs the same scenario with SGLang's pre-fix loader
// under every policy and shows what each does with the bug.
//
//   bazel run -c opt //tools:normgraph -- --help

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/step_buffers.h"
#include "core/tensor_util.h"
#include "graph/bucketed_graphs.h"
#include "layers/gemma3_norm_stack.h"
#include "layers/legacy_zero_centered_rms_norm.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/safetensors/writer.h"
#include "layers/weights.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(
    std::string, model, "qwen3_5",
    "Norm stack to build: qwen3_5 (Qwen3.5: zero-centred norms, gated "
    "linear-attention "
    "norms, q/k norms; three linear-attention layers to one full) or gemma3.");
ABSL_FLAG(int, layers, 0,
          "Decoder layers; 0 keeps the Hugging Face config default (32 / 26).");
ABSL_FLAG(
    int, hidden, 0,
    "Hidden size; 0 keeps the Hugging Face config default (4096 / 2304).");
ABSL_FLAG(std::string, dtype, "bf16",
          "Activation and weight dtype: bf16, f16 or f32.");
ABSL_FLAG(std::string, checkpoint, "",
          "safetensors checkpoint to load first. Empty: write a synthetic one "
          "(random weights, "
          "HF names) to $TMPDIR (or /tmp) and load that.");
ABSL_FLAG(std::string, update_checkpoint, "",
          "safetensors checkpoint for the weight updates: cycles alternate "
          "between it and "
          "--checkpoint (A -> B -> A). Empty: each cycle pushes freshly "
          "generated weights from "
          "memory, as an RL trainer does.");
ABSL_FLAG(
    int, cycles, 5,
    "RL-style cycles: one weight update, then --replays_per_cycle replays.");
ABSL_FLAG(int, replays_per_cycle, 4,
          "Graph replays per cycle, each at a random batch size.");
ABSL_FLAG(std::string, buckets, "1,2,4,8,16,32,64",
          "Batch-size buckets to capture, comma separated; a batch runs in the "
          "smallest bucket "
          "that holds it, padded.");
ABSL_FLAG(std::string, policy, "fail",
          "What a replay does when a buffer moved or went stale: fail (refuse, "
          "naming every "
          "tensor), recapture, rebind (patch node arguments in place), or "
          "unchecked (no checks, "
          "as today's engines).");
ABSL_FLAG(std::string, inject, "none",
          "none, or legacy-loader: build the zero-centred norms with SGLang's "
          "pre-fix loader "
          "(`self.gemma_weight = param.data + 1.0`) and run the scenario under "
          "every policy.");
ABSL_FLAG(uint64_t, seed, 1, "Seed for weights, inputs and batch sizes.");
ABSL_FLAG(
    std::string, device, "cpu",
    "Where the stack runs: cpu, or cuda / cuda:N (real CUDA graphs; needs "
    "a binary built with --config=cuda, e.g. from the GPU bundle).");
ABSL_FLAG(bool, json, false,
          "Print one JSON object (and nothing else) on stdout; progress goes "
          "to stderr.");

namespace normgraph {
namespace {

using Json = nlohmann::ordered_json;

struct Setup {
  std::string model;
  int layers = 0;
  int hidden = 0;
  DType dtype = DType::kBF16;
  std::string checkpoint;
  std::string update_checkpoint;
  int cycles = 0;
  int replays_per_cycle = 0;
  std::vector<int64_t> buckets;
  uint64_t seed = 0;
  bool json = false;
  DeviceRuntime* runtime = nullptr;  // where the stack runs
};

struct Outcome {
  ReplayPolicy policy;
  bool legacy = false;
  int64_t replays = 0;     // replays attempted
  int64_t equal = 0;       // graph output == eager output, bit for bit
  int64_t mismatched = 0;  // silent mismatches
  int64_t refused = 0;     // refused with an error naming the tensors
  std::string first_refusal;
  int64_t tensors_loaded = 0;
  GraphStats stats;
  int64_t launches_per_step = 0;
  int64_t parameters = 0;
  double eager_ms_total = 0;
};

std::ostream& Progress(const Setup& s) {
  return s.json ? std::cerr : std::cout;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<std::unique_ptr<NormStack>> MakeStack(const Setup& s,
                                                     bool legacy) {
  if (s.model == "qwen3_5") {
    Qwen35NormStackConfig c;
    if (s.layers > 0) c.num_hidden_layers = s.layers;
    if (s.hidden > 0) c.hidden_size = s.hidden;
    c.dtype = s.dtype;
    c.allocator = &s.runtime->allocator();
    if (legacy) c.zero_centered_factory = LegacyZeroCenteredFactory();
    NG_ASSIGN_OR_RETURN(auto m, Qwen35NormStack::Create(c));
    return std::unique_ptr<NormStack>(std::move(m));
  }
  if (s.model == "gemma3") {
    Gemma3NormStackConfig c;
    if (s.layers > 0) c.num_hidden_layers = s.layers;
    if (s.hidden > 0) c.hidden_size = s.hidden;
    c.dtype = s.dtype;
    c.allocator = &s.runtime->allocator();
    if (legacy) c.zero_centered_factory = LegacyZeroCenteredFactory();
    NG_ASSIGN_OR_RETURN(auto m, Gemma3NormStack::Create(c));
    return std::unique_ptr<NormStack>(std::move(m));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--model: unknown model '", s.model, "'"));
}

// Random weights for every parameter, with HF names: zero-centred weights near
// 0, others near 1.
absl::Status WriteSyntheticCheckpoint(Module& model, const std::string& path,
                                      uint64_t seed) {
  NG_ASSIGN_OR_RETURN(auto weights, RandomWeights(model, seed));
  std::vector<safetensors::NamedView> views;
  for (auto& [name, t] : weights) views.push_back({name, ViewOf(t)});
  return safetensors::WriteFile(path, views,
                                {{"format", "pt"}, {"generator", "normgraph"}});
}

absl::StatusOr<Outcome> RunScenario(const Setup& s, ReplayPolicy policy,
                                    bool legacy) {
  Outcome outcome;
  outcome.policy = policy;
  outcome.legacy = legacy;
  NG_ASSIGN_OR_RETURN(std::unique_ptr<NormStack> model, MakeStack(s, legacy));
  outcome.launches_per_step = model->LaunchesPerStep();
  model->ForEachParameter(
      [&](const std::string&, Parameter&) { ++outcome.parameters; });

  std::string checkpoint = s.checkpoint;
  if (checkpoint.empty()) {
    const char* tmpdir = std::getenv("TMPDIR");
    checkpoint =
        absl::StrCat(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp",
                     "/normgraph_synthetic_", s.model, "_", DTypeName(s.dtype),
                     ".safetensors");
    NG_RETURN_IF_ERROR(WriteSyntheticCheckpoint(*model, checkpoint, s.seed));
  }
  NG_ASSIGN_OR_RETURN(LoadReport first, LoadCheckpoint(*model, checkpoint));
  Progress(s) << absl::StreamFormat(
      "[%s%s] loaded %d tensors from %s\n", ReplayPolicyName(policy),
      legacy ? ", legacy loader" : "", first.loaded, checkpoint);

  NG_ASSIGN_OR_RETURN(std::unique_ptr<Stream> stream_owner,
                      s.runtime->NewStream());
  Stream& stream = *stream_owner;
  Allocator& allocator = s.runtime->allocator();
  StepFunction step;
  NormStack* m = model.get();
  step.specs = [m](int64_t batch) { return m->StepSpecs(batch); };
  step.forward = [m](Stream& st, const StepBuffers& b) {
    return m->Forward(st, b);
  };
  step.owners = {m};
  GraphOptions options;
  options.policy = policy;
  NG_ASSIGN_OR_RETURN(auto graphs,
                      BucketedGraphs::Create("decode", stream, step, s.buckets,
                                             options, allocator));

  std::mt19937_64 rng(s.seed * 7919 + 17);
  std::uniform_int_distribution<int64_t> batch_dist(1, s.buckets.back());
  for (int cycle = 1; cycle <= s.cycles; ++cycle) {
    // The weight update (RL step): alternate checkpoints, or push generated
    // weights from memory.
    LoadReport report;
    if (!s.update_checkpoint.empty()) {
      const std::string& path =
          cycle % 2 == 1 ? s.update_checkpoint : checkpoint;
      NG_ASSIGN_OR_RETURN(report, LoadCheckpoint(*model, path));
    } else {
      NG_ASSIGN_OR_RETURN(auto weights,
                          RandomWeights(*model, s.seed + 1000 * cycle));
      NG_ASSIGN_OR_RETURN(WeightSet set,
                          WeightSet::FromTensors(std::move(weights)));
      NG_ASSIGN_OR_RETURN(report, LoadWeights(*model, set));
    }
    outcome.tensors_loaded += report.loaded;

    std::vector<std::string> batches;
    int64_t equal = 0, mismatched = 0, refused = 0;
    for (int r = 0; r < s.replays_per_cycle; ++r) {
      const int64_t batch = batch_dist(rng);
      batches.push_back(absl::StrCat(batch));
      NG_ASSIGN_OR_RETURN(
          auto io,
          StepBuffers::Create("io", model->StepSpecs(batch), allocator));
      NG_ASSIGN_OR_RETURN(
          auto eager,
          StepBuffers::Create("eager", model->StepSpecs(batch), allocator));
      for (size_t i = 0; i < io->size(); ++i) {
        if (io->spec(i).role == StepRole::kInput) {
          // The same values for the graph and the eager run.
          const uint64_t seed = rng();
          NG_RETURN_IF_ERROR(FillNormal(io->tensor(i), seed, 0.0f, 1.0f));
          NG_RETURN_IF_ERROR(FillNormal(eager->tensor(i), seed, 0.0f, 1.0f));
        } else {
          NG_RETURN_IF_ERROR(
              Poison(io->tensor(i)));  // an unwritten output can never match
        }
      }
      NG_ASSIGN_OR_RETURN(int64_t bucket, graphs->BucketFor(batch));
      StepBuffers& statics = graphs->static_buffers(bucket);
      for (size_t i = 0; i < statics.size(); ++i) {
        if (statics.spec(i).role != StepRole::kInput)
          NG_RETURN_IF_ERROR(Poison(statics.tensor(i)));
      }
      const int64_t eager_start = NowNs();
      NG_RETURN_IF_ERROR(model->Forward(stream, *eager));
      NG_RETURN_IF_ERROR(stream.Synchronize());
      outcome.eager_ms_total += (NowNs() - eager_start) / 1e6;
      ++outcome.replays;
      absl::Status replayed = graphs->Run(*io);
      if (!replayed.ok()) {
        if (replayed.code() != absl::StatusCode::kFailedPrecondition)
          return replayed;
        ++refused;
        if (outcome.first_refusal.empty())
          outcome.first_refusal = std::string(replayed.message());
        continue;
      }
      bool same = true;
      for (size_t i = 0; i < io->size(); ++i) {
        if (io->spec(i).role == StepRole::kOutput &&
            !BitwiseEqual(io->tensor(i), eager->tensor(i))) {
          same = false;
        }
      }
      (same ? equal : mismatched) += 1;
    }
    outcome.equal += equal;
    outcome.mismatched += mismatched;
    outcome.refused += refused;
    const GraphStats st = graphs->TotalStats();
    Progress(s) << absl::StreamFormat(
        "[%s] cycle %d/%d: loaded %d tensors in place | replays at batch %s: "
        "%d equal to eager, "
        "%d MISMATCHED, %d refused | repairs so far: %d recaptures, %d "
        "rebinds, %d refreshes\n",
        ReplayPolicyName(policy), cycle, s.cycles, report.loaded,
        absl::StrJoin(batches, ","), equal, mismatched, refused, st.recaptures,
        st.rebinds, st.refreshes);
  }
  outcome.stats = graphs->TotalStats();
  return outcome;
}

Json ToJson(const Outcome& o) {
  const GraphStats& st = o.stats;
  Json j;
  j["policy"] = std::string(ReplayPolicyName(o.policy));
  j["legacy_loader"] = o.legacy;
  j["replays"] = o.replays;
  j["equal_to_eager"] = o.equal;
  j["mismatched"] = o.mismatched;
  j["refused"] = o.refused;
  j["tensors_loaded"] = o.tensors_loaded;
  j["checks"] = st.checks;
  j["violations"] = st.violations;
  j["violations_by_tensor"] = st.violations_by_tensor;
  j["captures"] = st.captures;
  j["recaptures"] = st.recaptures;
  j["rebinds"] = st.rebinds;
  j["rebound_args"] = st.rebound_args;
  j["refreshes"] = st.refreshes;
  j["graph_replays"] = st.replays;
  j["mean_replay_us"] = st.replays ? st.replay_ns / 1e3 / st.replays : 0.0;
  j["mean_check_us"] = st.checks ? st.check_ns / 1e3 / st.checks : 0.0;
  j["mean_eager_step_us"] =
      o.replays ? o.eager_ms_total * 1e3 / o.replays : 0.0;
  j["check_share_of_replay"] = st.replays && st.checks
                                   ? (st.check_ns / double(st.checks)) /
                                         (st.replay_ns / double(st.replays))
                                   : 0.0;
  j["capture_ms_total"] = st.capture_ns / 1e6;
  j["rebind_ms_total"] = st.rebind_ns / 1e6;
  if (!o.first_refusal.empty()) j["first_refusal"] = o.first_refusal;
  return j;
}

void PrintSummary(const Setup& s, const Outcome& o) {
  const GraphStats& st = o.stats;
  std::cout << absl::StreamFormat(
      "\nsummary [%s%s]: %d cycles, %d replays (%d equal to eager bit for bit, "
      "%d MISMATCHED, "
      "%d refused), %d tensors loaded\n",
      ReplayPolicyName(o.policy), o.legacy ? ", legacy loader" : "", s.cycles,
      o.replays, o.equal, o.mismatched, o.refused, o.tensors_loaded);
  std::cout << absl::StreamFormat(
      "  graph: %d nodes per step; %d checks, %d violations; repairs: %d "
      "recaptures, %d rebinds "
      "(%d node args), %d refreshes\n",
      o.launches_per_step, st.checks, st.violations, st.recaptures, st.rebinds,
      st.rebound_args, st.refreshes);
  if (st.replays > 0) {
    const double replay_us = st.replay_ns / 1e3 / st.replays;
    const double check_us = st.checks ? st.check_ns / 1e3 / st.checks : 0;
    const bool cpu = s.runtime->device() == Device::Cpu();
    std::cout << absl::StreamFormat(
        "  time: %.1f us per replay%s, %.2f us per identity+freshness check "
        "(%.3f%% of that), %.1f us per eager step (synchronized)\n",
        replay_us, cpu ? " (CPU backend)" : " (host time of cudaGraphLaunch)",
        check_us, replay_us > 0 ? 100.0 * check_us / replay_us : 0.0,
        o.replays ? o.eager_ms_total * 1e3 / o.replays : 0.0);
  }
  if (!st.violations_by_tensor.empty()) {
    std::cout << "  violations by tensor:\n";
    int shown = 0;
    for (const auto& [name, n] : st.violations_by_tensor) {
      if (++shown > 8) {
        std::cout << "    ... and " << st.violations_by_tensor.size() - 8
                  << " more tensors\n";
        break;
      }
      std::cout << "    " << name << ": " << n << "\n";
    }
  }
  if (!o.first_refusal.empty()) {
    // The header and the first few named tensors.
    std::vector<absl::string_view> lines =
        absl::StrSplit(o.first_refusal, '\n');
    if (lines.size() > 4) lines.resize(4);
    std::cout << "  first refusal: " << absl::StrJoin(lines, "\n  ")
              << "\n  ...\n";
  }
}

absl::StatusOr<Setup> ParseSetup() {
  Setup s;
  s.model = absl::GetFlag(FLAGS_model);
  s.layers = absl::GetFlag(FLAGS_layers);
  s.hidden = absl::GetFlag(FLAGS_hidden);
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  if (dtype == "bf16") {
    s.dtype = DType::kBF16;
  } else if (dtype == "f16") {
    s.dtype = DType::kF16;
  } else if (dtype == "f32") {
    s.dtype = DType::kF32;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--dtype: unknown dtype '", dtype, "'"));
  }
  s.checkpoint = absl::GetFlag(FLAGS_checkpoint);
  s.update_checkpoint = absl::GetFlag(FLAGS_update_checkpoint);
  s.cycles = absl::GetFlag(FLAGS_cycles);
  s.replays_per_cycle = absl::GetFlag(FLAGS_replays_per_cycle);
  if (s.cycles < 1 || s.replays_per_cycle < 1) {
    return absl::InvalidArgumentError(
        "--cycles and --replays_per_cycle must be >= 1");
  }
  for (absl::string_view b :
       absl::StrSplit(absl::GetFlag(FLAGS_buckets), ',', absl::SkipEmpty())) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(b, &v) || v < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--buckets: bad bucket '", b, "'"));
    }
    s.buckets.push_back(v);
  }
  if (s.buckets.empty())
    return absl::InvalidArgumentError("--buckets: none given");
  std::sort(s.buckets.begin(), s.buckets.end());
  s.seed = absl::GetFlag(FLAGS_seed);
  s.json = absl::GetFlag(FLAGS_json);
  NG_ASSIGN_OR_RETURN(Device device, ParseDevice(absl::GetFlag(FLAGS_device)));
  absl::StatusOr<DeviceRuntime*> runtime = GetRuntime(device);
  if (!runtime.ok()) {
    return absl::Status(runtime.status().code(),
                        absl::StrCat("--device: ", runtime.status().message()));
  }
  s.runtime = *runtime;
  return s;
}

int Main() {
  absl::StatusOr<Setup> setup = ParseSetup();
  if (!setup.ok()) {
    std::cerr << "normgraph: " << setup.status().message() << "\n";
    return 2;
  }
  const Setup& s = *setup;
  const std::string inject = absl::GetFlag(FLAGS_inject);
  std::vector<std::pair<ReplayPolicy, bool>> runs;
  if (inject == "none") {
    std::optional<ReplayPolicy> policy =
        ParseReplayPolicy(absl::GetFlag(FLAGS_policy));
    if (!policy) {
      std::cerr << "normgraph: --policy: unknown policy '"
                << absl::GetFlag(FLAGS_policy) << "'\n";
      return 2;
    }
    runs.emplace_back(*policy, false);
  } else if (inject == "legacy-loader") {
    for (ReplayPolicy p : {ReplayPolicy::kUnchecked, ReplayPolicy::kFail,
                           ReplayPolicy::kRecapture, ReplayPolicy::kRebind}) {
      runs.emplace_back(p, true);
    }
  } else {
    std::cerr << "normgraph: --inject: unknown fault '" << inject << "'\n";
    return 2;
  }

  Progress(s) << "device: " << s.runtime->Describe() << "\n";
  Json json;
  json["model"] = s.model;
  json["device"] = s.runtime->Describe();
  json["dtype"] = std::string(DTypeName(s.dtype));
  json["inject"] = inject;
  json["runs"] = Json::array();
  bool ok = true;
  std::vector<std::string> verdicts;
  for (const auto& [policy, legacy] : runs) {
    absl::StatusOr<Outcome> outcome = RunScenario(s, policy, legacy);
    if (!outcome.ok()) {
      std::cerr << "normgraph: " << outcome.status() << "\n";
      return 1;
    }
    json["runs"].push_back(ToJson(*outcome));
    if (!s.json) PrintSummary(s, *outcome);
    // Any silent mismatch under a checked policy is a failure. Under the legacy
    // loader, unchecked must show the bug (else the demonstration is broken)
    // and fail must refuse.
    std::string verdict;
    if (policy != ReplayPolicy::kUnchecked && outcome->mismatched > 0) {
      ok = false;
      verdict = "FAILED: silent mismatch under a checked policy";
    } else if (legacy && policy == ReplayPolicy::kUnchecked) {
      verdict = outcome->mismatched > 0
                    ? "replays silently read the old gemma_weight (the bug)"
                    : "FAILED: the injected bug did not show";
      ok = ok && outcome->mismatched > 0;
    } else if (legacy && policy == ReplayPolicy::kFail) {
      verdict = outcome->refused > 0
                    ? "every affected replay refused, naming the moved buffers"
                    : "FAILED: nothing refused";
      ok = ok && outcome->refused > 0;
    } else if (outcome->refused > 0) {
      verdict = "replays refused";
      ok = ok && legacy;
    } else {
      verdict = "every replay equal to eager, bit for bit";
    }
    verdicts.push_back(
        absl::StrFormat("  %-10s %s", ReplayPolicyName(policy), verdict));
  }
  json["ok"] = ok;
  if (s.json) {
    std::cout << json.dump(1) << "\n";
  } else {
    std::cout << "\nverdict"
              << (inject == "none" ? "" : " (--inject=legacy-loader)") << ":\n"
              << absl::StrJoin(verdicts, "\n") << "\n";
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace normgraph

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "normgraph: checks that CUDA-graph-style replay of an LLM norm stack "
      "equals eager "
      "execution through RL weight updates.\n"
      "  bazel run -c opt //tools:normgraph -- [--model=qwen3_5|gemma3] "
      "[--policy=...] "
      "[--inject=legacy-loader] [--json]");
  absl::ParseCommandLine(argc, argv);
  return normgraph::Main();
}
