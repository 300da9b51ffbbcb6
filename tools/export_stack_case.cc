// Writes one decode step of a norm stack, computed by normgraph (eager, on the
// CPU backend or, with --device=cuda, on the GPU), for the comparison against
// Hugging Face's own modules on the GPU host (tools/hf/compare_stack.py):
//   OUT/weights.safetensors  the checkpoint (HF names), loaded through
//                            normgraph's loader
//   OUT/step.safetensors     the step's inputs and every output normgraph
//                            computed; metadata has the model config
//   bazel run -c opt //tools:export_stack_case -- --model=qwen3_5
//     --out_dir=/tmp/case [--device=cuda]

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/step_buffers.h"
#include "core/tensor_util.h"
#include "layers/gemma3_norm_stack.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/safetensors/writer.h"
#include "layers/weights.h"

ABSL_FLAG(std::string, model, "qwen3_5", "qwen3_5 or gemma3");
ABSL_FLAG(int, layers, 8, "decoder layers");
ABSL_FLAG(int, batch, 4, "rows (tokens) in the step");
ABSL_FLAG(std::string, out_dir, "",
          "where to write weights.safetensors and step.safetensors");
ABSL_FLAG(uint64_t, seed, 7, "seed for weights and inputs");
ABSL_FLAG(std::string, device, "cpu",
          "cpu, or cuda / cuda:N (a binary built with --config=cuda)");

namespace normgraph {
namespace {

absl::Status Run() {
  const std::string model_name = absl::GetFlag(FLAGS_model);
  const std::string dir = absl::GetFlag(FLAGS_out_dir);
  if (dir.empty()) return absl::InvalidArgumentError("--out_dir is required");
  NG_ASSIGN_OR_RETURN(Device device, ParseDevice(absl::GetFlag(FLAGS_device)));
  NG_ASSIGN_OR_RETURN(DeviceRuntime * runtime, GetRuntime(device));
  std::map<std::string, std::string> meta = {{"model", model_name},
                                             {"device", runtime->Describe()}};
  std::unique_ptr<NormStack> model;
  if (model_name == "qwen3_5") {
    Qwen35NormStackConfig c;  // HF defaults, fewer layers
    c.num_hidden_layers = absl::GetFlag(FLAGS_layers);
    c.allocator = &runtime->allocator();
    NG_ASSIGN_OR_RETURN(auto m, Qwen35NormStack::Create(c));
    std::vector<std::string> types;
    for (auto t : m->config().layer_types) {
      types.push_back(t == Qwen35LayerType::kFullAttention
                          ? "full_attention"
                          : "linear_attention");
    }
    meta["layer_types"] = absl::StrJoin(types, ",");
    model = std::move(m);
  } else if (model_name == "gemma3") {
    Gemma3NormStackConfig c;
    c.num_hidden_layers = absl::GetFlag(FLAGS_layers);
    c.allocator = &runtime->allocator();
    NG_ASSIGN_OR_RETURN(model, Gemma3NormStack::Create(c));
  } else {
    return absl::InvalidArgumentError("--model must be qwen3_5 or gemma3");
  }
  meta["layers"] = absl::StrCat(absl::GetFlag(FLAGS_layers));

  // Weights: zero-centred ones near 0, the gated norms' near 1.
  uint64_t seed = absl::GetFlag(FLAGS_seed);
  NG_ASSIGN_OR_RETURN(NamedTensors weights, RandomWeights(*model, seed));
  seed += 1000;
  std::vector<safetensors::NamedView> views;
  for (auto& [name, t] : weights) views.push_back({name, ViewOf(t)});
  const std::string weights_path = dir + "/weights.safetensors";
  NG_RETURN_IF_ERROR(
      safetensors::WriteFile(weights_path, views, {{"format", "pt"}}));
  NG_ASSIGN_OR_RETURN(LoadReport report, LoadCheckpoint(*model, weights_path));

  NG_ASSIGN_OR_RETURN(
      auto step,
      StepBuffers::Create("step", model->StepSpecs(absl::GetFlag(FLAGS_batch)),
                          runtime->allocator()));
  for (size_t i = 0; i < step->size(); ++i) {
    if (step->spec(i).role == StepRole::kInput) {
      NG_RETURN_IF_ERROR(FillNormal(step->tensor(i), seed + i, 0.0f, 1.0f));
    } else {
      NG_RETURN_IF_ERROR(Poison(step->tensor(i)));
    }
  }
  // The inputs as they were before the step (the step only writes outputs and
  // workspace).
  NG_ASSIGN_OR_RETURN(std::unique_ptr<Stream> stream, runtime->NewStream());
  NG_RETURN_IF_ERROR(model->Forward(*stream, *step));
  std::vector<Tensor> host;  // keeps the read-back tensors alive
  std::vector<safetensors::NamedView> out;
  for (size_t i = 0; i < step->size(); ++i) {
    if (step->spec(i).role == StepRole::kWorkspace) continue;
    NG_ASSIGN_OR_RETURN(Tensor t, ToHost(step->tensor(i)));
    host.push_back(t);
    out.push_back({step->spec(i).name, ViewOf(t)});
  }
  NG_RETURN_IF_ERROR(
      safetensors::WriteFile(dir + "/step.safetensors", out, meta));
  std::cout << "wrote " << report.loaded << " weights and " << out.size()
            << " step tensors (computed on " << runtime->Describe() << ") to "
            << dir << "\n";
  return absl::OkStatus();
}

}  // namespace
}  // namespace normgraph

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::Status s = normgraph::Run();
  if (!s.ok()) {
    std::cerr << "export_stack_case: " << s << "\n";
    return 1;
  }
  return 0;
}
