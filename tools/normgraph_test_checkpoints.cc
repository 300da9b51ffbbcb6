// Test helper for the main job's tests: writes a checkpoint for a norm stack in
// one of Hugging Face's layouts (checkpoint_dir_testing.h), with random
// weights, so the shell tests can run normgraph on model directories, sharded
// checkpoints, nested text models and broken weights.
//
//   normgraph_test_checkpoints --out=DIR [--model=qwen3_5|gemma3] [--layers=N]
//       [--hidden=N] [--dtype=bf16|f16|f32] [--seed=N] [--shard_bytes=N]
//       [--prefix=PREFIX] [--nested] [--no_config] [--no_extras]
//       [--vision] [--mtp] [--nan=TENSOR] [--file_name=NAME]
//
// --shard_bytes > 0 writes shards and model.safetensors.index.json;
// --nested writes the multimodal config (text_config) and, unless --prefix is
// given, names under "model.language_model."; --nan=TENSOR puts a NaN into
// that tensor (a model name such as model.norm.weight).

#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/tensor_util.h"
#include "layers/checkpoint_dir_testing.h"
#include "layers/gemma3_norm_stack.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/weights.h"

namespace normgraph {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "normgraph_test_checkpoints: %s\n", message.c_str());
  return 2;
}

int Main(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) return Fail("unexpected argument " + a);
    a = a.substr(2);
    const size_t eq = a.find('=');
    if (eq == std::string::npos) {
      flags[a] = "true";
    } else {
      flags[a.substr(0, eq)] = a.substr(eq + 1);
    }
  }
  auto get = [&](const std::string& k, const std::string& def) {
    auto it = flags.find(k);
    return it == flags.end() ? def : it->second;
  };
  auto integer = [&](const std::string& k, int64_t def) {
    int64_t v = def;
    if (flags.count(k) && !absl::SimpleAtoi(flags[k], &v)) v = -1;
    return v;
  };
  const std::string out = get("out", "");
  if (out.empty()) return Fail("--out=DIR is required");
  const std::string model = get("model", "qwen3_5");
  const int64_t layers = integer("layers", 4);
  const int64_t hidden = integer("hidden", 48);
  const std::string dtype_name = get("dtype", "bf16");
  DType dtype = DType::kBF16;
  if (dtype_name == "f16") dtype = DType::kF16;
  if (dtype_name == "f32") dtype = DType::kF32;
  const bool nested = flags.count("nested") > 0;

  testing::HfLayout layout;
  layout.prefix = get("prefix", nested ? "model.language_model." : "model.");
  layout.max_shard_bytes = integer("shard_bytes", 0);
  layout.extras = !flags.count("no_extras");
  layout.vision = flags.count("vision") > 0;
  layout.mtp = flags.count("mtp") > 0;
  layout.file_name = get("file_name", "model.safetensors");
  const std::string torch_dtype = dtype == DType::kBF16  ? "bfloat16"
                                  : dtype == DType::kF16 ? "float16"
                                                         : "float32";

  std::unique_ptr<Module> stack;
  if (model == "qwen3_5") {
    Qwen35NormStackConfig c;
    c.num_hidden_layers = layers;
    c.hidden_size = hidden;
    c.dtype = dtype;
    absl::StatusOr<std::unique_ptr<Qwen35NormStack>> m =
        Qwen35NormStack::Create(c);
    if (!m.ok()) return Fail(std::string(m.status().message()));
    if (!flags.count("no_config")) {
      layout.config_json =
          testing::Qwen35ConfigJson((*m)->config(), nested, torch_dtype);
    }
    stack = *std::move(m);
  } else if (model == "gemma3") {
    Gemma3NormStackConfig c;
    c.num_hidden_layers = layers;
    c.hidden_size = hidden;
    c.dtype = dtype;
    absl::StatusOr<std::unique_ptr<Gemma3NormStack>> m =
        Gemma3NormStack::Create(c);
    if (!m.ok()) return Fail(std::string(m.status().message()));
    if (!flags.count("no_config")) {
      layout.config_json =
          testing::Gemma3ConfigJson((*m)->config(), nested, torch_dtype);
    }
    stack = *std::move(m);
  } else {
    return Fail("--model: qwen3_5 or gemma3");
  }
  absl::StatusOr<NamedTensors> weights =
      RandomWeights(*stack, static_cast<uint64_t>(integer("seed", 1)));
  if (!weights.ok()) return Fail(std::string(weights.status().message()));
  const std::string nan = get("nan", "");
  if (!nan.empty()) {
    bool found = false;
    for (auto& [name, t] : *weights) {
      if (name != nan) continue;
      std::vector<float> v = ToFloats(t);
      v[v.size() / 2] = std::numeric_limits<float>::quiet_NaN();
      absl::StatusOr<Tensor> copy =
          Tensor::Empty(CpuAllocator(), t.shape(), t.dtype());
      if (!copy.ok() ||
          !CopyInto(HostView{v.data(), DType::kF32, t.shape()}, *copy).ok()) {
        return Fail("cannot poison " + nan);
      }
      t = *copy;
      found = true;
    }
    if (!found) return Fail("--nan: no tensor " + nan);
  }
  absl::StatusOr<std::vector<std::string>> names =
      testing::WriteHfCheckpoint(out, *weights, layout);
  if (!names.ok()) return Fail(std::string(names.status().message()));
  std::printf("wrote %zu tensors to %s\n", names->size(), out.c_str());
  return 0;
}

}  // namespace
}  // namespace normgraph

int main(int argc, char** argv) { return normgraph::Main(argc, argv); }
