// Transactional weight loading, on every backend (core/testing/backends.h):
// each test runs on the CPU and, in the `_cuda` build, on cuda:0 with the
// model's parameters and derived buffers in device memory. The sources stay
// host tensors (WeightSet::FromTensors takes CPU tensors), and device
// parameters are read back through ToHost / ToFloats / BitwiseEqual.

#include "layers/weights.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "core/testing/backends.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/safetensors/writer.h"

namespace normgraph {
namespace {

using ::testing::HasSubstr;

Qwen35NormStackConfig SmallQwen(Allocator* allocator) {
  Qwen35NormStackConfig c;
  c.allocator = allocator;
  c.num_hidden_layers = 4;
  c.hidden_size = 24;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 8;
  c.linear_num_value_heads = 2;
  c.linear_value_head_dim = 6;
  return c;
}

// Random weights for every parameter of `model`, as in-memory host tensors (an
// RL trainer's push).
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

// Every slot's bytes (copies on the slot's own device), to prove nothing
// changed.
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

// Where every slot points and how often its storage was written: a load that
// fails validation must not even touch the device memory.
struct SlotState {
  TensorIdentity identity;
  uint64_t write_version;
};

std::vector<SlotState> SlotStates(Module& model) {
  std::vector<SlotState> out;
  model.ForEachSlot([&](absl::string_view, TensorSlot& slot) {
    out.push_back(
        {slot.tensor().Identity(), slot.tensor().storage()->write_version()});
  });
  return out;
}

void ExpectUntouched(Module& model, const std::vector<SlotState>& before) {
  size_t i = 0;
  model.ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
    ASSERT_LT(i, before.size());
    EXPECT_EQ(slot.tensor().Identity(), before[i].identity) << name;
    EXPECT_EQ(slot.tensor().storage()->write_version(), before[i].write_version)
        << name;
    ++i;
  });
  EXPECT_EQ(i, before.size());
}

class WeightsTest : public BackendTest {
 protected:
  // A small Qwen3.5 stack whose weights live on the device under test.
  std::unique_ptr<Qwen35NormStack> Model() {
    absl::StatusOr<std::unique_ptr<Qwen35NormStack>> model =
        Qwen35NormStack::Create(SmallQwen(&allocator()));
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? *std::move(model) : nullptr;
  }

  // Loads the weights of seed 11 while layers.2.input_layernorm.weight's
  // after-load hook fails the first time ("disk on fire"; the rollback runs it
  // again, and it succeeds). The replaced hook no longer refreshes that norm's
  // gemma_weight: it is refreshed by hand, through its slot, afterwards.
  absl::Status LoadWithAFailingHook(Module& model) {
    Parameter* victim = model.FindParameter("layers.2.input_layernorm.weight");
    TensorSlot* gemma = model.FindSlot("layers.2.input_layernorm.gemma_weight");
    if (victim == nullptr || gemma == nullptr)
      return absl::NotFoundError("layers.2.input_layernorm");
    auto calls = std::make_shared<int>(0);
    victim->set_after_load([calls] {
      return ++*calls == 1 ? absl::InternalError("disk on fire")
                           : absl::OkStatus();
    });
    const absl::Status s =
        LoadWeights(model, *WeightSet::FromTensors(TestWeights(model, 11)))
            .status();
    const absl::Status refreshed = gemma->Refresh();
    EXPECT_TRUE(refreshed.ok()) << refreshed;
    return s;
  }

  // "cpu", "cuda0": for per-device file names.
  std::string Tag() const {
    return DeviceParamName(::testing::TestParamInfo<Device>(device(), 0));
  }

  // Every parameter and buffer lives on the device under test.
  void ExpectAllOnDevice(Module& model) {
    int slots = 0;
    model.ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
      ++slots;
      EXPECT_EQ(slot.tensor().storage()->device(), device()) << name;
    });
    EXPECT_GT(slots, 0);
  }
};

TEST_P(WeightsTest, ParameterNamesFollowTheHfCheckpoint) {
  auto model = Model();
  ASSERT_NE(model, nullptr);
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
  ExpectAllOnDevice(*model);
}

TEST_P(WeightsTest, RoundTripThroughSafetensorsFile) {
  auto a = Model();
  ASSERT_NE(a, nullptr);
  absl::StatusOr<WeightSet> pushed = WeightSet::FromTensors(TestWeights(*a, 1));
  ASSERT_TRUE(pushed.ok());
  ASSERT_TRUE(LoadWeights(*a, *pushed).ok());

  // Host copies of the parameters, whatever device they live on.
  absl::StatusOr<NamedTensors> copies = ParameterCopies(*a);
  ASSERT_TRUE(copies.ok()) << copies.status();
  std::vector<safetensors::NamedView> views;
  for (const auto& [name, t] : *copies) {
    EXPECT_EQ(t.storage()->device(), Device::Cpu()) << name;
    views.push_back({name, ViewOf(t)});
  }
  ASSERT_EQ(views.size(), 14u);
  const std::string path =
      absl::StrCat(testing::TempDir(), "/qwen_", Tag(), ".safetensors");
  ASSERT_TRUE(safetensors::WriteFile(path, views).ok());

  auto b = Model();
  ASSERT_NE(b, nullptr);
  absl::StatusOr<LoadReport> report = LoadCheckpoint(*b, path);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->loaded, 14);
  EXPECT_EQ(report->converted, 0);
  // Parameters and derived buffers alike are bit-identical.
  std::vector<Tensor> sa = SnapshotAllSlots(*a);
  ExpectUnchanged(*b, sa);
}

TEST_P(WeightsTest, LoadsInPlaceAndBumpsWriteVersions) {
  auto model = Model();
  ASSERT_NE(model, nullptr);
  Parameter* w = model->FindParameter("norm.weight");
  TensorSlot* g = model->FindSlot("norm.gemma_weight");
  const TensorIdentity wid = w->tensor().Identity(),
                       gid = g->tensor().Identity();
  const uint64_t wv = w->tensor().storage()->write_version();
  const uint64_t gv = g->tensor().storage()->write_version();
  auto weights = TestWeights(*model, 2);
  ASSERT_TRUE(LoadWeights(*model, *WeightSet::FromTensors(weights)).ok());
  EXPECT_EQ(w->tensor().Identity(), wid);
  EXPECT_EQ(g->tensor().Identity(), gid);
  EXPECT_GT(w->tensor().storage()->write_version(), wv);
  EXPECT_GT(g->tensor().storage()->write_version(), gv);
  EXPECT_FALSE(g->IsStale());
  EXPECT_EQ(g->rebind_count(), 0);
  // The bytes landed in the (device) parameter.
  ASSERT_EQ(weights.back().first, "model.norm.weight");
  EXPECT_TRUE(BitwiseEqual(w->tensor(), weights.back().second));
  ExpectAllOnDevice(*model);
}

TEST_P(WeightsTest, ConvertsFloatDtypesUnlessTurnedOff) {
  auto model = Model();
  ASSERT_NE(model, nullptr);
  auto f32 = TestWeights(*model, 3, DType::kF32);
  absl::StatusOr<LoadReport> report =
      LoadWeights(*model, *WeightSet::FromTensors(f32));
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->converted, 14);
  const std::vector<float> src = ToFloats(f32.back().second);
  const std::vector<float> got =
      ToFloats(model->FindParameter("norm.weight")->tensor());
  ASSERT_EQ(f32.back().first, "model.norm.weight");
  ASSERT_EQ(got.size(), src.size());
  for (size_t i = 0; i < src.size(); ++i)
    EXPECT_EQ(got[i], RoundTo(DType::kBF16, src[i]));

  const std::vector<Tensor> before = SnapshotAllSlots(*model);
  const std::vector<SlotState> states = SlotStates(*model);
  LoadOptions strict_dtype;
  strict_dtype.allow_dtype_conversion = false;
  absl::Status s =
      LoadWeights(*model, *WeightSet::FromTensors(f32), strict_dtype).status();
  EXPECT_THAT(s.message(),
              HasSubstr("dtype f32 differs from the parameter's bf16"));
  ExpectUnchanged(*model, before);
  ExpectUntouched(*model, states);
}

TEST_P(WeightsTest, SubsetsAndUnexpectedNamesFollowOptions) {
  auto model = Model();
  ASSERT_NE(model, nullptr);
  auto all = TestWeights(*model, 4);
  std::vector<std::pair<std::string, Tensor>> subset(all.begin(),
                                                     all.begin() + 3);
  Tensor extra = *Tensor::Empty(CpuAllocator(), {24}, DType::kBF16);
  subset.emplace_back("lm_head.weight", extra);

  const std::vector<Tensor> before = SnapshotAllSlots(*model);
  const std::vector<SlotState> states = SlotStates(*model);
  absl::Status strict =
      LoadWeights(*model, *WeightSet::FromTensors(subset)).status();
  EXPECT_EQ(strict.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(strict.message(), HasSubstr("lm_head.weight: unexpected"));
  EXPECT_THAT(strict.message(),
              HasSubstr("model.norm.weight: missing from the source"));
  EXPECT_THAT(strict.message(), HasSubstr("no weight was changed"));
  ExpectUnchanged(*model, before);
  ExpectUntouched(*model, states);

  LoadOptions lenient;
  lenient.allow_missing = true;
  lenient.ignore_unexpected = true;
  absl::StatusOr<LoadReport> report =
      LoadWeights(*model, *WeightSet::FromTensors(subset), lenient);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->loaded, 3);
  EXPECT_EQ(report->missing.size(), 11u);
  EXPECT_THAT(report->unexpected, ::testing::ElementsAre("lm_head.weight"));
  // The three it loaded hold the source's bytes.
  for (size_t i = 0; i < 3; ++i) {
    const std::string& name = subset[i].first;
    Parameter* p =
        model->FindParameter(name.substr(std::string("model.").size()));
    ASSERT_NE(p, nullptr) << name;
    EXPECT_TRUE(BitwiseEqual(p->tensor(), subset[i].second)) << name;
  }
}

// Every validation error, each leaving every weight and derived buffer
// bit-identical (and, since nothing is written before validation passes, at
// the same address with the same write version).
TEST_P(WeightsTest, FailedLoadsChangeNothing) {
  auto model = Model();
  ASSERT_NE(model, nullptr);
  ASSERT_TRUE(
      LoadWeights(*model, *WeightSet::FromTensors(TestWeights(*model, 5)))
          .ok());
  const std::vector<Tensor> before = SnapshotAllSlots(*model);
  const std::vector<SlotState> states = SlotStates(*model);

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
    ExpectUntouched(*model, states);
  }

  // A checkpoint with a non-float tensor under a parameter's name.
  std::vector<std::pair<std::string, Tensor>> good = TestWeights(*model, 9);
  std::vector<safetensors::NamedView> views;
  for (auto& [name, t] : good) views.push_back({name, ViewOf(t)});  // host
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
  ExpectUntouched(*model, states);

  // A corrupt checkpoint file never gets as far as the model.
  // (One file per device: the `_cuda` binary runs this on each.)
  const std::string base = absl::StrCat("corrupt_", Tag(), ".safetensors");
  const std::string path = absl::StrCat(testing::TempDir(), "/", base);
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
  EXPECT_THAT(s.message(), HasSubstr(base));
  ExpectUnchanged(*model, before);
  ExpectUntouched(*model, states);
}

// If a loader fails half-way (here: a hook that fails on its third call), what
// was written is restored and the derived buffers are refreshed again.
TEST_P(WeightsTest, AFailingLoaderIsRolledBack) {
  auto model = Model();
  ASSERT_NE(model, nullptr);
  ASSERT_TRUE(
      LoadWeights(*model, *WeightSet::FromTensors(TestWeights(*model, 10)))
          .ok());
  const std::vector<Tensor> before = SnapshotAllSlots(*model);
  const std::vector<SlotState> states = SlotStates(*model);
  absl::Status s = LoadWithAFailingHook(*model);
  EXPECT_THAT(s.message(), HasSubstr("disk on fire"));
  EXPECT_THAT(s.message(), HasSubstr("all weights were restored"));
  ExpectUnchanged(*model, before);
  // Restored in place: no slot moved.
  const std::vector<SlotState> after = SlotStates(*model);
  ASSERT_EQ(after.size(), states.size());
  for (size_t i = 0; i < after.size(); ++i)
    EXPECT_EQ(after[i].identity, states[i].identity) << i;
}

// The last step of a load refreshes every derived buffer left stale (here one
// made stale before the load, by a direct write to its source that the load
// does not touch). If that refresh fails, the load is undone like a failed
// write: every weight it wrote is restored.
TEST_P(WeightsTest, AFailedFinalRefreshIsRolledBack) {
  auto model = Model();
  ASSERT_NE(model, nullptr);
  ASSERT_TRUE(
      LoadWeights(*model, *WeightSet::FromTensors(TestWeights(*model, 10)))
          .ok());
  Parameter* source = model->FindParameter("layers.2.input_layernorm.weight");
  TensorSlot* derived =
      model->FindSlot("layers.2.input_layernorm.gemma_weight");
  ASSERT_NE(source, nullptr);
  ASSERT_NE(derived, nullptr);
  derived->DeriveFrom(&source->slot(),
                      [] { return absl::InternalError("refresh broke"); });
  ASSERT_TRUE(Fill(source->tensor(), 0.5f).ok());
  ASSERT_TRUE(derived->IsStale());
  const std::vector<Tensor> before = SnapshotAllSlots(*model);
  std::vector<std::pair<std::string, Tensor>> others;
  for (auto& [name, t] : TestWeights(*model, 11)) {
    if (name != "model.layers.2.input_layernorm.weight")
      others.emplace_back(name, t);
  }
  LoadOptions lenient;
  lenient.allow_missing = true;
  absl::Status s =
      LoadWeights(*model, *WeightSet::FromTensors(others), lenient).status();
  EXPECT_THAT(s.message(), HasSubstr("input_layernorm.gemma_weight"));
  EXPECT_THAT(s.message(), HasSubstr("refresh broke"));
  EXPECT_THAT(s.message(), HasSubstr("all weights were restored"));
  ExpectUnchanged(*model, before);
}

// A rollback over tied weights: layer 1's input norm weight is layer 0's
// tensor, so the load's write to layer 0 makes layer 1's gemma_weight stale
// and the final pass refreshes it from the new values before another refresh
// fails. Undoing the load must leave every slot as it was, layer 1's
// gemma_weight included (1 + the old value, and fresh), with the buffer whose
// refresh fails named (and left stale, as it was before the load).
TEST_P(WeightsTest, ARollbackRestoresTiedNeighboursDerivedBuffers) {
  auto model = Model();
  ASSERT_NE(model, nullptr);
  ASSERT_TRUE(
      LoadWeights(*model, *WeightSet::FromTensors(TestWeights(*model, 10)))
          .ok());
  Parameter* first = model->FindParameter("layers.0.input_layernorm.weight");
  Parameter* tied = model->FindParameter("layers.1.input_layernorm.weight");
  TensorSlot* tied_derived =
      model->FindSlot("layers.1.input_layernorm.gemma_weight");
  ASSERT_TRUE(first != nullptr && tied != nullptr && tied_derived != nullptr);
  tied->slot().Rebind(first->tensor());
  ASSERT_TRUE(tied_derived->Refresh().ok());
  Parameter* broken = model->FindParameter("layers.3.input_layernorm.weight");
  TensorSlot* broken_derived =
      model->FindSlot("layers.3.input_layernorm.gemma_weight");
  ASSERT_TRUE(broken != nullptr && broken_derived != nullptr);
  broken_derived->DeriveFrom(
      &broken->slot(), [] { return absl::InternalError("refresh broke"); });
  ASSERT_TRUE(Fill(broken->tensor(), 0.5f).ok());
  ASSERT_TRUE(broken_derived->IsStale());
  const std::vector<Tensor> before = SnapshotAllSlots(*model);

  std::vector<std::pair<std::string, Tensor>> only_first;
  for (auto& [name, t] : TestWeights(*model, 11)) {
    if (name == "model.layers.0.input_layernorm.weight")
      only_first.emplace_back(name, t);
  }
  ASSERT_EQ(only_first.size(), 1u);
  LoadOptions lenient;
  lenient.allow_missing = true;
  absl::Status s =
      LoadWeights(*model, *WeightSet::FromTensors(only_first), lenient)
          .status();
  EXPECT_THAT(s.message(), HasSubstr("refresh broke"));
  EXPECT_THAT(s.message(), HasSubstr("all weights were restored"));
  EXPECT_THAT(s.message(), HasSubstr("layers.3.input_layernorm.gemma_weight"));
  ExpectUnchanged(*model, before);
  EXPECT_FALSE(tied_derived->IsStale()) << tied_derived->StaleReason();
  EXPECT_TRUE(broken_derived->IsStale());
}

// A derived buffer already stale before a load (its source written directly)
// comes out of a failed load as it went in: the same bytes, still stale (the
// load's rollback refreshes only what the load itself made stale), so the
// fail policy still reports it.
TEST_P(WeightsTest, AFailedLoadLeavesBuffersStaleBeforeItAsTheyWere) {
  auto model = Model();
  ASSERT_NE(model, nullptr);
  ASSERT_TRUE(
      LoadWeights(*model, *WeightSet::FromTensors(TestWeights(*model, 10)))
          .ok());
  Parameter* written = model->FindParameter("layers.1.input_layernorm.weight");
  TensorSlot* stale = model->FindSlot("layers.1.input_layernorm.gemma_weight");
  ASSERT_TRUE(written != nullptr && stale != nullptr);
  ASSERT_TRUE(Fill(written->tensor(), 0.5f).ok());
  ASSERT_TRUE(stale->IsStale());
  const std::vector<Tensor> before = SnapshotAllSlots(*model);
  absl::Status s = LoadWithAFailingHook(*model);
  EXPECT_THAT(s.message(), HasSubstr("disk on fire"));
  EXPECT_THAT(s.message(), HasSubstr("all weights were restored"));
  EXPECT_TRUE(stale->IsStale());
  ExpectUnchanged(*model, before);
  // A successful load refreshes it with the others.
  ASSERT_TRUE(
      LoadWeights(*model, *WeightSet::FromTensors(TestWeights(*model, 12)))
          .ok());
  EXPECT_FALSE(stale->IsStale()) << stale->StaleReason();
}

NG_INSTANTIATE_BACKEND_TEST(WeightsTest);

using RandomWeightsTest = WeightsTest;

TEST_P(RandomWeightsTest, ZeroCentredNearZeroOthersNearOneDeterministic) {
  auto model = Model();
  ASSERT_NE(model, nullptr);
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
  // They are host tensors a device model loads as they are.
  absl::StatusOr<WeightSet> set = WeightSet::FromTensors(*a);
  ASSERT_TRUE(set.ok()) << set.status();
  absl::StatusOr<LoadReport> report = LoadWeights(*model, *set);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->loaded, 14);
  EXPECT_EQ(report->converted, 0);
  for (const auto& [name, t] : *a) {
    Parameter* p =
        model->FindParameter(name.substr(std::string("model.").size()));
    ASSERT_NE(p, nullptr) << name;
    EXPECT_TRUE(BitwiseEqual(p->tensor(), t)) << name;
  }
}

NG_INSTANTIATE_BACKEND_TEST(RandomWeightsTest);

}  // namespace
}  // namespace normgraph
