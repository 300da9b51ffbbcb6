#include "layers/weights.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/safetensors/writer.h"

namespace normgraph {
namespace {

using ::testing::HasSubstr;

Qwen35NormStackConfig SmallQwen() {
  Qwen35NormStackConfig c;
  c.num_hidden_layers = 4;
  c.hidden_size = 24;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 8;
  c.linear_num_value_heads = 2;
  c.linear_value_head_dim = 6;
  return c;
}

// Random weights for every parameter of `model`, as in-memory tensors (an RL
// trainer's push).
std::vector<std::pair<std::string, Tensor>> TestWeights(
    Module& model, uint64_t seed, DType dtype = DType::kBF16) {
  std::vector<std::pair<std::string, Tensor>> out;
  model.ForEachParameter([&](const std::string& name, Parameter& p) {
    Tensor t = *Tensor::Empty(CpuAllocator(), p.tensor().shape(), dtype);
    EXPECT_TRUE(FillNormal(t, seed++, 0.0f, 0.5f).ok());
    out.emplace_back(name, t);
  });
  return out;
}

// Every slot's bytes, to prove nothing changed.
std::vector<Tensor> SnapshotAllSlots(Module& model) {
  std::vector<Tensor> out;
  model.ForEachSlot([&](absl::string_view, TensorSlot& slot) {
    out.push_back(*Clone(slot.tensor()));
  });
  return out;
}

void ExpectUnchanged(Module& model, const std::vector<Tensor>& before) {
  size_t i = 0;
  model.ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
    ASSERT_LT(i, before.size());
    EXPECT_TRUE(BitwiseEqual(slot.tensor(), before[i])) << name;
    ++i;
  });
  EXPECT_EQ(i, before.size());
}

TEST(WeightsTest, ParameterNamesFollowTheHfCheckpoint) {
  auto model = *Qwen35NormStack::Create(SmallQwen());
  std::vector<std::string> names;
  model->ForEachParameter(
      [&](const std::string& n, Parameter&) { names.push_back(n); });
  EXPECT_THAT(names,
              ::testing::Contains("model.layers.0.input_layernorm.weight"));
  EXPECT_THAT(names, ::testing::Contains(
                         "model.layers.0.post_attention_layernorm.weight"));
  EXPECT_THAT(names,
              ::testing::Contains("model.layers.0.linear_attn.norm.weight"));
  EXPECT_THAT(names,
              ::testing::Contains("model.layers.3.self_attn.q_norm.weight"));
  EXPECT_THAT(names,
              ::testing::Contains("model.layers.3.self_attn.k_norm.weight"));
  EXPECT_THAT(names, ::testing::Contains("model.norm.weight"));
  // 4 layers x 2 + 3 linear-attention norms + 1 x (q, k) + the final norm.
  EXPECT_EQ(names.size(), 8u + 3u + 2u + 1u);
  EXPECT_NE(model->FindSlot("layers.3.self_attn.q_norm.gemma_weight"), nullptr);
  EXPECT_EQ(model->FindSlot("layers.0.linear_attn.norm.gemma_weight"), nullptr);
}

TEST(WeightsTest, RoundTripThroughSafetensorsFile) {
  auto a = *Qwen35NormStack::Create(SmallQwen());
  absl::StatusOr<WeightSet> pushed = WeightSet::FromTensors(TestWeights(*a, 1));
  ASSERT_TRUE(pushed.ok());
  ASSERT_TRUE(LoadWeights(*a, *pushed).ok());

  std::vector<safetensors::NamedView> views;
  for (auto& [name, view] : ParameterViews(*a)) views.push_back({name, view});
  const std::string path =
      absl::StrCat(testing::TempDir(), "/qwen.safetensors");
  ASSERT_TRUE(safetensors::WriteFile(path, views).ok());

  auto b = *Qwen35NormStack::Create(SmallQwen());
  absl::StatusOr<LoadReport> report = LoadCheckpoint(*b, path);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->loaded, 14);
  EXPECT_EQ(report->converted, 0);
  // Parameters and derived buffers alike are bit-identical.
  std::vector<Tensor> sa = SnapshotAllSlots(*a);
  ExpectUnchanged(*b, sa);
}

TEST(WeightsTest, LoadsInPlaceAndBumpsWriteVersions) {
  auto model = *Qwen35NormStack::Create(SmallQwen());
  Parameter* w = model->FindParameter("norm.weight");
  TensorSlot* g = model->FindSlot("norm.gemma_weight");
  const TensorIdentity wid = w->tensor().Identity(),
                       gid = g->tensor().Identity();
  const uint64_t wv = w->tensor().storage()->write_version();
  ASSERT_TRUE(
      LoadWeights(*model, *WeightSet::FromTensors(TestWeights(*model, 2)))
          .ok());
  EXPECT_EQ(w->tensor().Identity(), wid);
  EXPECT_EQ(g->tensor().Identity(), gid);
  EXPECT_GT(w->tensor().storage()->write_version(), wv);
  EXPECT_FALSE(g->IsStale());
  EXPECT_EQ(g->rebind_count(), 0);
}

TEST(WeightsTest, ConvertsFloatDtypesUnlessTurnedOff) {
  auto model = *Qwen35NormStack::Create(SmallQwen());
  auto f32 = TestWeights(*model, 3, DType::kF32);
  absl::StatusOr<LoadReport> report =
      LoadWeights(*model, *WeightSet::FromTensors(f32));
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->converted, 14);
  const std::vector<float> src = ToFloats(f32.back().second);
  const std::vector<float> got =
      ToFloats(model->FindParameter("norm.weight")->tensor());
  ASSERT_EQ(f32.back().first, "model.norm.weight");
  for (size_t i = 0; i < src.size(); ++i)
    EXPECT_EQ(got[i], RoundTo(DType::kBF16, src[i]));

  LoadOptions strict_dtype;
  strict_dtype.allow_dtype_conversion = false;
  absl::Status s =
      LoadWeights(*model, *WeightSet::FromTensors(f32), strict_dtype).status();
  EXPECT_THAT(s.message(),
              HasSubstr("dtype f32 differs from the parameter's bf16"));
}

TEST(WeightsTest, SubsetsAndUnexpectedNamesFollowOptions) {
  auto model = *Qwen35NormStack::Create(SmallQwen());
  auto all = TestWeights(*model, 4);
  std::vector<std::pair<std::string, Tensor>> subset(all.begin(),
                                                     all.begin() + 3);
  Tensor extra = *Tensor::Empty(CpuAllocator(), {24}, DType::kBF16);
  subset.emplace_back("lm_head.weight", extra);

  absl::Status strict =
      LoadWeights(*model, *WeightSet::FromTensors(subset)).status();
  EXPECT_EQ(strict.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(strict.message(), HasSubstr("lm_head.weight: unexpected"));
  EXPECT_THAT(strict.message(),
              HasSubstr("model.norm.weight: missing from the source"));
  EXPECT_THAT(strict.message(), HasSubstr("no weight was changed"));

  LoadOptions lenient;
  lenient.allow_missing = true;
  lenient.ignore_unexpected = true;
  absl::StatusOr<LoadReport> report =
      LoadWeights(*model, *WeightSet::FromTensors(subset), lenient);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->loaded, 3);
  EXPECT_EQ(report->missing.size(), 11u);
  EXPECT_THAT(report->unexpected, ::testing::ElementsAre("lm_head.weight"));
}

// Every validation error, each leaving every weight and derived buffer
// bit-identical.
TEST(WeightsTest, FailedLoadsChangeNothing) {
  auto model = *Qwen35NormStack::Create(SmallQwen());
  ASSERT_TRUE(
      LoadWeights(*model, *WeightSet::FromTensors(TestWeights(*model, 5)))
          .ok());
  const std::vector<Tensor> before = SnapshotAllSlots(*model);

  struct Case {
    std::string what;
    std::vector<std::pair<std::string, Tensor>> tensors;
    std::string message;
  };
  std::vector<Case> cases;
  {
    auto t = TestWeights(
        *model, 6);  // all valid but one of the wrong shape, last in order
    t.back().second = *Tensor::Empty(CpuAllocator(), {23}, DType::kBF16);
    cases.push_back(
        {"shape", t,
         "model.norm.weight: shape [23] does not match the parameter's [24]"});
  }
  {
    auto t = TestWeights(*model, 7);
    t.emplace_back(t.front());  // a duplicate name
    cases.push_back({"duplicate", t, "appears more than once"});
  }
  {
    auto t = TestWeights(*model, 8);
    t.pop_back();
    cases.push_back({"missing", t, "model.norm.weight: missing"});
  }
  for (const Case& c : cases) {
    absl::Status s =
        LoadWeights(*model, *WeightSet::FromTensors(c.tensors)).status();
    EXPECT_FALSE(s.ok()) << c.what;
    EXPECT_THAT(s.message(), HasSubstr(c.message)) << c.what;
    ExpectUnchanged(*model, before);
  }

  // A checkpoint with a non-float tensor under a parameter's name.
  std::vector<std::pair<std::string, Tensor>> good = TestWeights(*model, 9);
  std::vector<safetensors::NamedView> views;
  for (auto& [name, t] : good) views.push_back({name, ViewOf(t)});
  std::string bytes = *safetensors::Serialize(views);
  const std::string key = R"("model.norm.weight":{"dtype":"BF16")";
  const size_t at = bytes.find(key);
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, key.size(), R"("model.norm.weight":{"dtype":"I16" )");
  auto file = safetensors::SafetensorsFile::FromBytes(
      std::make_shared<std::string>(bytes), "ckpt");
  ASSERT_TRUE(file.ok()) << file.status();
  absl::Status s =
      LoadWeights(*model, WeightSet::FromSafetensors(*file)).status();
  EXPECT_THAT(s.message(),
              HasSubstr("model.norm.weight: dtype I16 is not a float type"));
  EXPECT_THAT(s.message(), HasSubstr("from ckpt"));
  ExpectUnchanged(*model, before);

  // A corrupt checkpoint file never gets as far as the model.
  const std::string path =
      absl::StrCat(testing::TempDir(), "/corrupt.safetensors");
  ASSERT_TRUE(safetensors::WriteFile(path, views).ok());
  {
    std::string truncated = *safetensors::Serialize(views);
    truncated.resize(truncated.size() - 3);
    FILE* f = fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    fwrite(truncated.data(), 1, truncated.size(), f);
    fclose(f);
  }
  s = LoadCheckpoint(*model, path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("corrupt.safetensors"));
  ExpectUnchanged(*model, before);
}

// If a loader fails half-way (here: a hook that fails on its third call), what
// was written is restored and the derived buffers are refreshed again.
TEST(WeightsTest, AFailingLoaderIsRolledBack) {
  auto model = *Qwen35NormStack::Create(SmallQwen());
  ASSERT_TRUE(
      LoadWeights(*model, *WeightSet::FromTensors(TestWeights(*model, 10)))
          .ok());
  const std::vector<Tensor> before = SnapshotAllSlots(*model);
  Parameter* victim = model->FindParameter("layers.2.input_layernorm.weight");
  int calls = 0;
  victim->set_after_load([&] {
    return ++calls == 1 ? absl::InternalError("disk on fire")
                        : absl::OkStatus();
  });
  absl::Status s =
      LoadWeights(*model, *WeightSet::FromTensors(TestWeights(*model, 11)))
          .status();
  EXPECT_THAT(s.message(), HasSubstr("disk on fire"));
  EXPECT_THAT(s.message(), HasSubstr("all weights were restored"));
  // The victim's own gemma_weight is no longer refreshed by the replaced hook:
  // refresh it by hand (through its slot), then everything must match.
  ASSERT_TRUE(
      model->FindSlot("layers.2.input_layernorm.gemma_weight")->Refresh().ok());
  ExpectUnchanged(*model, before);
}

}  // namespace
}  // namespace normgraph

namespace normgraph {
namespace {

TEST(RandomWeightsTest, ZeroCentredNearZeroOthersNearOneDeterministic) {
  auto model = *Qwen35NormStack::Create(SmallQwen());
  absl::StatusOr<NamedTensors> a = RandomWeights(*model, 5, 0.1f);
  absl::StatusOr<NamedTensors> b = RandomWeights(*model, 5, 0.1f);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), 14u);
  for (size_t i = 0; i < a->size(); ++i) {
    const auto& [name, t] = (*a)[i];
    EXPECT_TRUE(BitwiseEqual(t, (*b)[i].second)) << name;
    double mean = 0;
    for (float v : ToFloats(t)) mean += v / t.numel();
    const bool gated = name.find("linear_attn") != std::string::npos;
    EXPECT_NEAR(mean, gated ? 1.0 : 0.0, 0.2) << name;
  }
}

}  // namespace
}  // namespace normgraph
