#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/cpu_stream.h"
#include "core/step_buffers.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "layers/gemma3_norm_stack.h"
#include "layers/legacy_zero_centered_rms_norm.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/weights.h"

namespace normgraph {
namespace {

Qwen35NormStackConfig SmallQwen() {
  Qwen35NormStackConfig c;
  c.num_hidden_layers = 8;
  c.hidden_size = 40;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.linear_num_value_heads = 3;
  c.linear_value_head_dim = 12;
  return c;
}

Gemma3NormStackConfig SmallGemma() {
  Gemma3NormStackConfig c;
  c.num_hidden_layers = 3;
  c.hidden_size = 36;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 20;
  return c;
}

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

std::unique_ptr<StepBuffers> Step(const NormStack& model, int64_t batch,
                                  uint64_t seed) {
  auto step =
      *StepBuffers::Create("step", model.StepSpecs(batch), CpuAllocator());
  for (size_t i = 0; i < step->size(); ++i) {
    if (step->spec(i).role == StepRole::kInput) {
      EXPECT_TRUE(FillNormal(step->tensor(i), seed + i, 0.0f, 2.0f).ok());
    } else {
      EXPECT_TRUE(Poison(step->tensor(i)).ok());
    }
  }
  return step;
}

class NormStackTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      model_ = *Qwen35NormStack::Create(SmallQwen());
    } else {
      model_ = *Gemma3NormStack::Create(SmallGemma());
    }
    RandomizeWeights(*model_, 1);
  }
  std::unique_ptr<NormStack> model_;
  CpuStream stream_;
};

TEST_P(NormStackTest, EveryOutputIsWrittenWithOneLaunchPerNorm) {
  auto step = Step(*model_, 3, 100);
  const int64_t launches = stream_.eager_launches();
  ASSERT_TRUE(model_->Forward(stream_, *step).ok());
  EXPECT_EQ(stream_.eager_launches() - launches, model_->LaunchesPerStep());
  int outputs = 0;
  for (size_t i = 0; i < step->size(); ++i) {
    if (step->spec(i).role != StepRole::kOutput) continue;
    ++outputs;
    for (float v : ToFloats(step->tensor(i)))
      ASSERT_FALSE(std::isnan(v)) << step->spec(i).name;
  }
  EXPECT_GT(outputs, 3);
}

// Rows (sequences) never mix: a batch equals its rows run one at a time. Graph
// buckets pad batches with extra rows, which relies on this.
TEST_P(NormStackTest, RowsAreIndependent) {
  auto batch = Step(*model_, 4, 200);
  ASSERT_TRUE(model_->Forward(stream_, *batch).ok());
  for (int64_t row = 0; row < 4; ++row) {
    auto single = Step(*model_, 1, 999);
    for (size_t i = 0; i < single->size(); ++i) {
      if (single->spec(i).role != StepRole::kInput) continue;
      Tensor src = *batch->tensor(i).Narrow(0, row, 1);
      ASSERT_TRUE(CopyInto(ViewOf(src), single->tensor(i)).ok());
    }
    ASSERT_TRUE(model_->Forward(stream_, *single).ok());
    for (size_t i = 0; i < single->size(); ++i) {
      if (single->spec(i).role != StepRole::kOutput) continue;
      EXPECT_TRUE(
          BitwiseEqual(*batch->tensor(i).Narrow(0, row, 1), single->tensor(i)))
          << single->spec(i).name << " row " << row;
    }
  }
}

// The residual stream threads every layer's norms into the final output.
TEST_P(NormStackTest, EveryResidualNormReachesTheOutput) {
  auto step = Step(*model_, 2, 300);
  ASSERT_TRUE(model_->Forward(stream_, *step).ok());
  const Tensor reference = *Clone(*step->Get("out"));
  std::vector<std::string> names;
  model_->ForEachParameter([&](const std::string& name, Parameter&) {
    if (name.find("_norm.") == std::string::npos &&
        name.find("linear_attn") == std::string::npos) {
      names.push_back(
          name);  // the residual-stream norms, not q/k or the gated norm
    }
  });
  ASSERT_FALSE(names.empty());
  for (const std::string& name : names) {
    Parameter* p =
        model_->FindParameter(name.substr(std::string("model.").size()));
    ASSERT_NE(p, nullptr) << name;
    const Tensor saved = *Clone(p->tensor());
    Tensor bumped = *Clone(p->tensor());
    ASSERT_TRUE(Fill(bumped, 0.7f).ok());
    ASSERT_TRUE(p->Load(ViewOf(bumped)).ok());
    ASSERT_TRUE(model_->Forward(stream_, *step).ok());
    EXPECT_FALSE(BitwiseEqual(*step->Get("out"), reference))
        << name << " does not reach the output";
    ASSERT_TRUE(p->Load(ViewOf(saved)).ok());
  }
  ASSERT_TRUE(model_->Forward(stream_, *step).ok());
  EXPECT_TRUE(BitwiseEqual(*step->Get("out"), reference));
}

INSTANTIATE_TEST_SUITE_P(Models, NormStackTest, ::testing::Values(true, false),
                         [](const auto& info) {
                           return info.param ? "Qwen35" : "Gemma3";
                         });

TEST(Gemma3NormStackTest, NamesFollowTheHfCheckpoint) {
  auto model = *Gemma3NormStack::Create(SmallGemma());
  std::vector<std::string> names;
  model->ForEachParameter(
      [&](const std::string& n, Parameter&) { names.push_back(n); });
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

TEST(Qwen35NormStackTest, DefaultsAreHfConfigDefaults) {
  Qwen35NormStackConfig c;
  c.num_hidden_layers =
      8;  // keep the test small; the per-layer pattern is HF's
  auto model = *Qwen35NormStack::Create(c);
  EXPECT_EQ(model->config().hidden_size, 4096);
  EXPECT_EQ(model->config().head_dim, 256);
  EXPECT_EQ(model->config().linear_value_head_dim, 128);
  ASSERT_EQ(model->config().layer_types.size(), 8u);
  EXPECT_EQ(model->config().layer_types[2], Qwen35LayerType::kLinearAttention);
  EXPECT_EQ(model->config().layer_types[3], Qwen35LayerType::kFullAttention);
  EXPECT_EQ(model->config().layer_types[7], Qwen35LayerType::kFullAttention);
  Qwen35NormStackConfig bad = SmallQwen();
  bad.layer_types = {Qwen35LayerType::kFullAttention};
  EXPECT_FALSE(Qwen35NormStack::Create(bad).ok());
}

TEST(LegacyStackTest, LegacyLoaderMovesEveryZeroCenteredBuffer) {
  Qwen35NormStackConfig c = SmallQwen();
  c.zero_centered_factory = LegacyZeroCenteredFactory();
  auto model = *Qwen35NormStack::Create(c);
  RandomizeWeights(*model, 7);
  int moved = 0, derived = 0;
  model->ForEachSlot([&](absl::string_view, TensorSlot& slot) {
    if (slot.source() == nullptr) return;
    ++derived;
    moved += slot.rebind_count() == 1;
  });
  EXPECT_EQ(derived, 8 * 2 + 2 * 2 + 1);
  EXPECT_EQ(moved, derived);
}

}  // namespace
}  // namespace normgraph
