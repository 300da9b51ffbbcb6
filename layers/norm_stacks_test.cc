// The Qwen3.5-, Gemma3- and Qwen3 (Llama)-shaped norm stacks, on every backend
// (core/testing/backends.h): each test runs on the CPU and, in the `_cuda`
// build, on cuda:0 with the stack's weights and step buffers in device memory
// and every forward pass launched on the fixture's stream. A device step must
// equal the same step on the CPU reference kernels bit for bit.

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/cpu_stream.h"
#include "core/step_buffers.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "core/testing/backends.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "layers/gemma3_norm_stack.h"
#include "layers/legacy_zero_centered_rms_norm.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/qwen3_norm_stack.h"
#include "layers/weights.h"

namespace normgraph {
namespace {

Qwen35NormStackConfig SmallQwen(Allocator* allocator) {
  Qwen35NormStackConfig c;
  c.num_hidden_layers = 8;
  c.hidden_size = 40;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.linear_num_value_heads = 3;
  c.linear_value_head_dim = 12;
  c.allocator = allocator;
  return c;
}

Gemma3NormStackConfig SmallGemma(Allocator* allocator) {
  Gemma3NormStackConfig c;
  c.num_hidden_layers = 3;
  c.hidden_size = 36;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 20;
  c.allocator = allocator;
  return c;
}

Qwen3NormStackConfig SmallQwen3(Allocator* allocator) {
  Qwen3NormStackConfig c;
  c.num_hidden_layers = 3;
  c.hidden_size = 44;
  c.num_attention_heads = 3;
  c.num_key_value_heads = 2;
  c.head_dim = 12;
  c.allocator = allocator;
  return c;
}

// Loads random weights (host tensors, the same for a given seed on every
// device).
void RandomizeWeights(Module& model, uint64_t seed) {
  std::vector<std::pair<std::string, Tensor>> ws;
  model.ForEachParameter([&](const std::string& name, Parameter& p) {
    Tensor t =
        *Tensor::Empty(CpuAllocator(), p.tensor().shape(), p.tensor().dtype());
    ASSERT_TRUE(FillNormal(t, seed++, 0.1f, 0.4f).ok());
    ws.emplace_back(name, t);
  });
  ASSERT_TRUE(LoadWeights(model, *WeightSet::FromTensors(ws)).ok());
}

// Step buffers from `allocator`: inputs random (the same for a given seed on
// every device), everything else poisoned.
std::unique_ptr<StepBuffers> Step(const NormStack& model, int64_t batch,
                                  uint64_t seed, Allocator& allocator) {
  absl::StatusOr<std::unique_ptr<StepBuffers>> step =
      StepBuffers::Create("step", model.StepSpecs(batch), allocator);
  EXPECT_TRUE(step.ok()) << step.status();
  if (!step.ok()) return nullptr;
  for (size_t i = 0; i < (*step)->size(); ++i) {
    if ((*step)->spec(i).role == StepRole::kInput) {
      EXPECT_TRUE(FillNormal((*step)->tensor(i), seed + i, 0.0f, 2.0f).ok());
    } else {
      EXPECT_TRUE(Poison((*step)->tensor(i)).ok());
    }
  }
  return *std::move(step);
}

enum class Model { kQwen35, kGemma3, kQwen3 };

class NormStackTest : public BackendTest {
 protected:
  // The model with its weights from `allocator` (null: the CPU), weights
  // randomized from seed 1.
  static std::unique_ptr<NormStack> MakeModel(Model which,
                                              Allocator* allocator) {
    std::unique_ptr<NormStack> model;
    if (which == Model::kQwen35) {
      absl::StatusOr<std::unique_ptr<Qwen35NormStack>> m =
          Qwen35NormStack::Create(SmallQwen(allocator));
      EXPECT_TRUE(m.ok()) << m.status();
      if (m.ok()) model = *std::move(m);
    } else if (which == Model::kGemma3) {
      absl::StatusOr<std::unique_ptr<Gemma3NormStack>> m =
          Gemma3NormStack::Create(SmallGemma(allocator));
      EXPECT_TRUE(m.ok()) << m.status();
      if (m.ok()) model = *std::move(m);
    } else {
      absl::StatusOr<std::unique_ptr<Qwen3NormStack>> m =
          Qwen3NormStack::Create(SmallQwen3(allocator));
      EXPECT_TRUE(m.ok()) << m.status();
      if (m.ok()) model = *std::move(m);
    }
    if (model != nullptr) RandomizeWeights(*model, 1);
    return model;
  }

  void EveryOutputIsWrittenWithOneLaunchPerNorm(Model which);
  void RowsAreIndependent(Model which);
  void EveryResidualNormReachesTheOutput(Model which);
};

void NormStackTest::EveryOutputIsWrittenWithOneLaunchPerNorm(Model which) {
  std::unique_ptr<NormStack> model = MakeModel(which, &allocator());
  ASSERT_NE(model, nullptr);
  model->ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
    EXPECT_EQ(slot.tensor().storage()->device(), device()) << name;
  });
  auto step = Step(*model, 3, 100, allocator());
  ASSERT_NE(step, nullptr);
  const int64_t launches = stream().eager_launches();
  ASSERT_TRUE(model->Forward(stream(), *step).ok());
  EXPECT_EQ(stream().eager_launches() - launches, model->LaunchesPerStep());
  int outputs = 0;
  for (size_t i = 0; i < step->size(); ++i) {
    if (step->spec(i).role != StepRole::kOutput) continue;
    ++outputs;
    const std::vector<float> values = ToFloats(step->tensor(i));
    ASSERT_EQ(static_cast<int64_t>(values.size()), step->tensor(i).numel())
        << step->spec(i).name;
    for (float v : values) ASSERT_FALSE(std::isnan(v)) << step->spec(i).name;
  }
  EXPECT_GT(outputs, 3);

  // The same step (same weights, same inputs) on the CPU reference kernels
  // writes the same bits into every step tensor.
  std::unique_ptr<NormStack> cpu_model = MakeModel(which, nullptr);
  ASSERT_NE(cpu_model, nullptr);
  auto cpu_step = Step(*cpu_model, 3, 100, CpuAllocator());
  ASSERT_NE(cpu_step, nullptr);
  CpuStream cpu_stream;
  ASSERT_TRUE(cpu_model->Forward(cpu_stream, *cpu_step).ok());
  ASSERT_EQ(cpu_step->size(), step->size());
  for (size_t i = 0; i < step->size(); ++i) {
    EXPECT_TRUE(BitwiseEqual(step->tensor(i), cpu_step->tensor(i)))
        << step->spec(i).name << " differs from the CPU reference";
  }
}

// Rows (sequences) never mix: a batch equals its rows run one at a time. Graph
// buckets pad batches with extra rows, which relies on this.
void NormStackTest::RowsAreIndependent(Model which) {
  std::unique_ptr<NormStack> model = MakeModel(which, &allocator());
  ASSERT_NE(model, nullptr);
  auto batch = Step(*model, 4, 200, allocator());
  ASSERT_NE(batch, nullptr);
  ASSERT_TRUE(model->Forward(stream(), *batch).ok());
  for (int64_t row = 0; row < 4; ++row) {
    auto single = Step(*model, 1, 999, allocator());
    ASSERT_NE(single, nullptr);
    for (size_t i = 0; i < single->size(); ++i) {
      if (single->spec(i).role != StepRole::kInput) continue;
      // The row goes through the host: a HostView must be host memory.
      Tensor src = *ToHost(*batch->tensor(i).Narrow(0, row, 1));
      ASSERT_TRUE(CopyInto(ViewOf(src), single->tensor(i)).ok());
    }
    ASSERT_TRUE(model->Forward(stream(), *single).ok());
    for (size_t i = 0; i < single->size(); ++i) {
      if (single->spec(i).role != StepRole::kOutput) continue;
      EXPECT_TRUE(
          BitwiseEqual(*batch->tensor(i).Narrow(0, row, 1), single->tensor(i)))
          << single->spec(i).name << " row " << row;
    }
  }
}

// The residual stream threads every layer's norms into the final output.
void NormStackTest::EveryResidualNormReachesTheOutput(Model which) {
  std::unique_ptr<NormStack> model = MakeModel(which, &allocator());
  ASSERT_NE(model, nullptr);
  auto step = Step(*model, 2, 300, allocator());
  ASSERT_NE(step, nullptr);
  ASSERT_TRUE(model->Forward(stream(), *step).ok());
  const Tensor reference = *Clone(*step->Get("out"));
  std::vector<std::string> names;
  model->ForEachParameter([&](const std::string& name, Parameter&) {
    if (name.find("_norm.") == std::string::npos &&
        name.find("linear_attn") == std::string::npos) {
      names.push_back(
          name);  // the residual-stream norms, not q/k or the gated norm
    }
  });
  ASSERT_FALSE(names.empty());
  for (const std::string& name : names) {
    Parameter* p =
        model->FindParameter(name.substr(std::string("model.").size()));
    ASSERT_NE(p, nullptr) << name;
    // Host copies: Load takes a HostView.
    const Tensor saved = *ToHost(p->tensor());
    Tensor bumped = *ToHost(p->tensor());
    ASSERT_TRUE(Fill(bumped, 0.7f).ok());
    ASSERT_TRUE(p->Load(ViewOf(bumped)).ok());
    ASSERT_TRUE(model->Forward(stream(), *step).ok());
    EXPECT_FALSE(BitwiseEqual(*step->Get("out"), reference))
        << name << " does not reach the output";
    ASSERT_TRUE(p->Load(ViewOf(saved)).ok());
  }
  ASSERT_TRUE(model->Forward(stream(), *step).ok());
  EXPECT_TRUE(BitwiseEqual(*step->Get("out"), reference));
}

TEST_P(NormStackTest, Qwen35EveryOutputIsWrittenWithOneLaunchPerNorm) {
  EveryOutputIsWrittenWithOneLaunchPerNorm(Model::kQwen35);
}
TEST_P(NormStackTest, Gemma3EveryOutputIsWrittenWithOneLaunchPerNorm) {
  EveryOutputIsWrittenWithOneLaunchPerNorm(Model::kGemma3);
}
TEST_P(NormStackTest, Qwen35RowsAreIndependent) {
  RowsAreIndependent(Model::kQwen35);
}
TEST_P(NormStackTest, Gemma3RowsAreIndependent) {
  RowsAreIndependent(Model::kGemma3);
}
TEST_P(NormStackTest, Qwen35EveryResidualNormReachesTheOutput) {
  EveryResidualNormReachesTheOutput(Model::kQwen35);
}
TEST_P(NormStackTest, Gemma3EveryResidualNormReachesTheOutput) {
  EveryResidualNormReachesTheOutput(Model::kGemma3);
}
TEST_P(NormStackTest, Qwen3EveryOutputIsWrittenWithOneLaunchPerNorm) {
  EveryOutputIsWrittenWithOneLaunchPerNorm(Model::kQwen3);
}
TEST_P(NormStackTest, Qwen3RowsAreIndependent) {
  RowsAreIndependent(Model::kQwen3);
}
TEST_P(NormStackTest, Qwen3EveryResidualNormReachesTheOutput) {
  EveryResidualNormReachesTheOutput(Model::kQwen3);
}

NG_INSTANTIATE_BACKEND_TEST(NormStackTest);

using Gemma3NormStackTest = BackendTest;

TEST_P(Gemma3NormStackTest, NamesFollowTheHfCheckpoint) {
  auto model = *Gemma3NormStack::Create(SmallGemma(&allocator()));
  std::vector<std::string> names;
  model->ForEachParameter([&](const std::string& n, Parameter& p) {
    names.push_back(n);
    EXPECT_EQ(p.tensor().storage()->device(), device()) << n;
  });
  EXPECT_EQ(names.size(), 3u * 6u + 1u);
  for (const char* suffix :
       {"input_layernorm", "post_attention_layernorm",
        "pre_feedforward_layernorm", "post_feedforward_layernorm",
        "self_attn.q_norm", "self_attn.k_norm"}) {
    EXPECT_THAT(names, ::testing::Contains(
                           absl::StrCat("model.layers.2.", suffix, ".weight")));
  }
  EXPECT_EQ(names.back(), "model.norm.weight");
}

NG_INSTANTIATE_BACKEND_TEST(Gemma3NormStackTest);

using Qwen35NormStackTest = BackendTest;

TEST_P(Qwen35NormStackTest, DefaultsAreHfConfigDefaults) {
  Qwen35NormStackConfig c;
  c.num_hidden_layers =
      8;  // keep the test small; the per-layer pattern is HF's
  c.allocator = &allocator();
  auto model = *Qwen35NormStack::Create(c);
  EXPECT_EQ(model->config().hidden_size, 4096);
  EXPECT_EQ(model->config().head_dim, 256);
  EXPECT_EQ(model->config().linear_value_head_dim, 128);
  ASSERT_EQ(model->config().layer_types.size(), 8u);
  EXPECT_EQ(model->config().layer_types[2], Qwen35LayerType::kLinearAttention);
  EXPECT_EQ(model->config().layer_types[3], Qwen35LayerType::kFullAttention);
  EXPECT_EQ(model->config().layer_types[7], Qwen35LayerType::kFullAttention);
  Qwen35NormStackConfig bad = SmallQwen(&allocator());
  bad.layer_types = {Qwen35LayerType::kFullAttention};
  EXPECT_FALSE(Qwen35NormStack::Create(bad).ok());
}

NG_INSTANTIATE_BACKEND_TEST(Qwen35NormStackTest);

using Qwen3NormStackTest = BackendTest;

TEST_P(Qwen3NormStackTest, NamesFollowTheHfCheckpoint) {
  auto model = *Qwen3NormStack::Create(SmallQwen3(&allocator()));
  std::vector<std::string> names;
  model->ForEachParameter([&](const std::string& n, Parameter& p) {
    names.push_back(n);
    EXPECT_EQ(p.tensor().storage()->device(), device()) << n;
    EXPECT_EQ(p.tensor().dtype(), DType::kBF16) << n;
  });
  EXPECT_EQ(names.size(), 3u * 4u + 1u);
  for (const char* suffix : {"input_layernorm", "post_attention_layernorm",
                             "self_attn.q_norm", "self_attn.k_norm"}) {
    EXPECT_THAT(names, ::testing::Contains(
                           absl::StrCat("model.layers.2.", suffix, ".weight")));
  }
  EXPECT_EQ(names.back(), "model.norm.weight");
  // Plain RMSNorm: no derived buffers, every slot is a parameter.
  model->ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
    EXPECT_EQ(slot.kind(), SlotKind::kParameter) << name;
  });
  Parameter* k_norm = model->FindParameter("layers.1.self_attn.k_norm.weight");
  ASSERT_NE(k_norm, nullptr);
  EXPECT_EQ(k_norm->tensor().shape(), Shape({12}));
}

TEST_P(Qwen3NormStackTest, DefaultsAreHfConfigDefaults) {
  Qwen3NormStackConfig c;
  EXPECT_EQ(c.num_hidden_layers, 36);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  c.num_hidden_layers = 2;  // keep the test small
  c.allocator = &allocator();
  auto model = *Qwen3NormStack::Create(c);
  EXPECT_EQ(model->config().hidden_size, 4096);
  EXPECT_EQ(model->config().head_dim, 128);
  EXPECT_EQ(model->LaunchesPerStep(), 2 + 2 * 4);
  Qwen3NormStackConfig bad = SmallQwen3(&allocator());
  bad.head_dim = 0;
  EXPECT_FALSE(Qwen3NormStack::Create(bad).ok());
}

// The plain norm is w * R(x r): a weight of ones passes the normalised input
// through, and the fused add leaves R(x + residual) in the residual stream.
TEST_P(Qwen3NormStackTest, LlamaStackWithoutQkNorms) {
  Qwen3NormStackConfig c = SmallQwen3(&allocator());
  c.qk_norm = false;
  auto model = *Qwen3NormStack::Create(c);
  int params = 0;
  model->ForEachParameter([&](const std::string&, Parameter&) { ++params; });
  EXPECT_EQ(params, 3 * 2 + 1);
  auto step = Step(*model, 2, 5, allocator());
  ASSERT_NE(step, nullptr);
  const int64_t launches = stream().eager_launches();
  ASSERT_TRUE(model->Forward(stream(), *step).ok());
  EXPECT_EQ(stream().eager_launches() - launches, model->LaunchesPerStep());
  EXPECT_EQ(model->LaunchesPerStep(), 2 + 3 * 2);
  for (float v : ToFloats(*step->Get("out"))) EXPECT_FALSE(std::isnan(v));
}

// A faulty factory (the fuzzers' self-tests use this seam) builds every norm.
TEST_P(Qwen3NormStackTest, FactoryBuildsEveryNorm) {
  Qwen3NormStackConfig c = SmallQwen3(&allocator());
  std::vector<std::string> built;
  c.rms_norm_factory = [&](std::string name, int64_t hidden,
                           const NormOptions& options) {
    built.push_back(absl::StrCat(name, "/", hidden));
    return RmsNorm::Create(std::move(name), hidden, options);
  };
  ASSERT_TRUE(Qwen3NormStack::Create(c).ok());
  EXPECT_EQ(built.size(), 3u * 4u + 1u);
  EXPECT_EQ(built.front(), "input_layernorm/44");
  EXPECT_EQ(built[2], "q_norm/12");
  EXPECT_EQ(built.back(), "norm/44");
}

NG_INSTANTIATE_BACKEND_TEST(Qwen3NormStackTest);

using LegacyStackTest = BackendTest;

TEST_P(LegacyStackTest, LegacyLoaderMovesEveryZeroCenteredBuffer) {
  Qwen35NormStackConfig c = SmallQwen(&allocator());
  c.zero_centered_factory = LegacyZeroCenteredFactory();
  auto model = *Qwen35NormStack::Create(c);
  RandomizeWeights(*model, 7);
  int moved = 0, derived = 0;
  model->ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
    if (slot.source() == nullptr) return;
    ++derived;
    moved += slot.rebind_count() == 1;
    // The moved buffer is a new allocation on the same device.
    EXPECT_EQ(slot.tensor().storage()->device(), device()) << name;
  });
  EXPECT_EQ(derived, 8 * 2 + 2 * 2 + 1);
  EXPECT_EQ(moved, derived);
}

NG_INSTANTIATE_BACKEND_TEST(LegacyStackTest);

}  // namespace
}  // namespace normgraph
