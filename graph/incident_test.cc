// Real incidents, reproduced on every backend (core/testing/backends.h): on
// the CPU, whose capture has CUDA's semantics, and on cuda:0 with real stream
// capture and cudaGraphLaunch. The exact outcome under each policy is
// asserted from the outputs, read back after the device has finished:
//  - unchecked: the replay's output is bit for bit what a model holding the
//    stale (old, or squatting) bytes computes eagerly, and differs from the
//    current model's eager output;
//  - fail: the refusal names exactly the moved tensors, and every output the
//    graph could write still holds the poison written before the refused
//    replay (nothing was launched);
//  - recapture / rebind: the replay equals eager bit for bit.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/step_buffers.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "core/testing/backends.h"
#include "gmock/gmock.h"
#include "graph/bucketed_graphs.h"
#include "gtest/gtest.h"
#include "layers/gemma3_norm_stack.h"
#include "layers/legacy_zero_centered_rms_norm.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/weights.h"

namespace normgraph {
namespace {

using ::testing::HasSubstr;

NamedTensors Weights(Module& model, uint64_t seed) {
  absl::StatusOr<NamedTensors> w = RandomWeights(model, seed);
  EXPECT_TRUE(w.ok()) << w.status();
  return w.ok() ? *std::move(w) : NamedTensors();
}

// The dotted names of the parameters that derived buffers are computed from
// (the weights of the zero-centred norms: gemma_weight = 1 + weight).
std::set<std::string> DerivedSourceNames(Module& model) {
  std::set<const TensorSlot*> sources;
  model.ForEachSlot([&](absl::string_view, TensorSlot& slot) {
    if (slot.source() != nullptr) sources.insert(slot.source());
  });
  std::set<std::string> names;
  model.ForEachParameter([&](const std::string& name, Parameter& p) {
    if (sources.count(&p.slot()) > 0) names.insert(name);
  });
  return names;
}

// Every byte of `t` is 0xFF (Poison's pattern), read back from its device.
::testing::AssertionResult StillPoisoned(const std::string& name,
                                         const Tensor& t) {
  absl::StatusOr<Tensor> host = ToHost(t);
  if (!host.ok()) {
    return ::testing::AssertionFailure()
           << "cannot read " << name << ": " << host.status();
  }
  const auto* bytes = static_cast<const unsigned char*>(host->data());
  const size_t n = host->numel() * DTypeSize(host->dtype());
  for (size_t i = 0; i < n; ++i) {
    if (bytes[i] != 0xFF) {
      return ::testing::AssertionFailure()
             << name << " was written (byte " << i << " of " << n << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// A model, its bucketed decode graphs, and an eager reference run on the same
// inputs, all on the stream's device.
class Incident {
 public:
  Incident(std::unique_ptr<NormStack> model, ReplayPolicy policy,
           Stream& stream, Allocator& allocator)
      : model_(std::move(model)), stream_(stream), allocator_(allocator) {
    Load(Weights(*model_, 1));
    StepFunction step;
    NormStack* m = model_.get();
    step.specs = [m](int64_t batch) { return m->StepSpecs(batch); };
    step.forward = [m](Stream& s, const StepBuffers& b) {
      return m->Forward(s, b);
    };
    step.owners = {m};
    GraphOptions options;
    options.policy = policy;
    auto graphs = BucketedGraphs::Create("decode", stream_, step, {1, 2, 4, 8},
                                         options, allocator_);
    EXPECT_TRUE(graphs.ok()) << graphs.status();
    if (graphs.ok()) graphs_ = *std::move(graphs);
  }

  void Load(std::vector<std::pair<std::string, Tensor>> weights) {
    LoadOptions o;
    o.allow_missing = true;  // RL updates may push a subset
    absl::StatusOr<LoadReport> r =
        LoadWeights(*model_, *WeightSet::FromTensors(weights), o);
    ASSERT_TRUE(r.ok()) << r.status();
  }

  // Runs the graph for `batch` rows (outputs poisoned first, static and
  // returned alike) and eager on the same inputs (unless `eager` is false: a
  // model that cannot run). Returns the graph's status; graph_io_/eager_ hold
  // the outputs.
  absl::Status RunBoth(int64_t batch, uint64_t seed, bool eager = true) {
    graph_io_ =
        *StepBuffers::Create("io", model_->StepSpecs(batch), allocator_);
    eager_ =
        *StepBuffers::Create("eager", model_->StepSpecs(batch), allocator_);
    for (size_t i = 0; i < graph_io_->size(); ++i) {
      if (graph_io_->spec(i).role == StepRole::kInput) {
        EXPECT_TRUE(
            FillNormal(graph_io_->tensor(i), seed + i, 0.0f, 1.5f).ok());
        EXPECT_TRUE(stream_.Copy(graph_io_->tensor(i), eager_->tensor(i)).ok());
      } else {
        EXPECT_TRUE(Poison(graph_io_->tensor(i)).ok());
        EXPECT_TRUE(Poison(eager_->tensor(i)).ok());
      }
    }
    StepBuffers& statics = graphs_->static_buffers(*graphs_->BucketFor(batch));
    for (size_t i = 0; i < statics.size(); ++i) {
      if (statics.spec(i).role != StepRole::kInput) {
        EXPECT_TRUE(Poison(statics.tensor(i)).ok());
      }
    }
    if (eager) EXPECT_TRUE(model_->Forward(stream_, *eager_).ok());
    return graphs_->Run(*graph_io_);
  }

  // Runs `other` (a model of the same architecture) eagerly on the inputs of
  // the last RunBoth.
  std::unique_ptr<StepBuffers> EagerOn(const NormStack& other) {
    auto out = *StepBuffers::Create(
        "reference", other.StepSpecs(eager_->batch()), allocator_);
    EXPECT_EQ(out->size(), eager_->size());
    for (size_t i = 0; i < out->size(); ++i) {
      if (out->spec(i).role == StepRole::kInput) {
        EXPECT_TRUE(stream_.Copy(eager_->tensor(i), out->tensor(i)).ok());
      } else {
        EXPECT_TRUE(Poison(out->tensor(i)).ok());
      }
    }
    EXPECT_TRUE(other.Forward(stream_, *out).ok());
    return out;
  }

  // True if every output of the graph run equals `reference`'s bit for bit.
  bool GraphEquals(const StepBuffers& reference) const {
    for (size_t i = 0; i < graph_io_->size(); ++i) {
      if (graph_io_->spec(i).role != StepRole::kOutput) continue;
      if (!BitwiseEqual(graph_io_->tensor(i), reference.tensor(i)))
        return false;
    }
    return true;
  }
  // True if every output of the graph run equals the eager run bit for bit.
  bool GraphEqualsEager() const { return GraphEquals(*eager_); }

  // After a refused Run: every tensor the graph of `bucket` writes (its static
  // outputs and workspace) and every output Run would have copied back still
  // holds the poison RunBoth wrote, read back once the stream has finished.
  ::testing::AssertionResult NothingLaunched(int64_t bucket) {
    absl::Status synced = stream_.Synchronize();
    if (!synced.ok()) return ::testing::AssertionFailure() << synced;
    StepBuffers& statics = graphs_->static_buffers(bucket);
    for (size_t i = 0; i < statics.size(); ++i) {
      if (statics.spec(i).role == StepRole::kInput) continue;
      ::testing::AssertionResult r = StillPoisoned(
          absl::StrCat("static ", statics.spec(i).name), statics.tensor(i));
      if (!r) return r;
    }
    for (size_t i = 0; i < graph_io_->size(); ++i) {
      if (graph_io_->spec(i).role != StepRole::kOutput) continue;
      ::testing::AssertionResult r =
          StillPoisoned(absl::StrCat("output ", graph_io_->spec(i).name),
                        graph_io_->tensor(i));
      if (!r) return r;
    }
    return ::testing::AssertionSuccess();
  }

  std::vector<std::string> ZeroCenteredBufferNames() {
    std::vector<std::string> names;
    model_->ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
      if (slot.source() != nullptr) names.emplace_back(name);
    });
    return names;
  }

  NormStack& model() { return *model_; }
  BucketedGraphs& graphs() { return *graphs_; }
  StepBuffers& eager() { return *eager_; }
  StepBuffers& graph_io() { return *graph_io_; }

 private:
  std::unique_ptr<NormStack> model_;
  Stream& stream_;
  Allocator& allocator_;
  std::unique_ptr<BucketedGraphs> graphs_;
  std::unique_ptr<StepBuffers> graph_io_, eager_;
};

// The fixture of every suite below: models and graphs on the backend's device.
class IncidentTest : public BackendTest {
 protected:
  Qwen35NormStackConfig SmallQwen(bool legacy) {
    Qwen35NormStackConfig c;
    c.num_hidden_layers = 4;
    c.hidden_size = 32;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.head_dim = 16;
    c.linear_num_value_heads = 2;
    c.linear_value_head_dim = 8;
    c.allocator = &allocator();
    if (legacy) c.zero_centered_factory = LegacyZeroCenteredFactory();
    return c;
  }
  Gemma3NormStackConfig SmallGemma3(bool legacy) {
    Gemma3NormStackConfig c;
    c.num_hidden_layers = 2;
    c.hidden_size = 24;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.head_dim = 8;
    c.allocator = &allocator();
    if (legacy) c.zero_centered_factory = LegacyZeroCenteredFactory();
    return c;
  }
  std::unique_ptr<NormStack> Qwen(bool legacy) {
    return *Qwen35NormStack::Create(SmallQwen(legacy));
  }

  Incident MakeIncident(std::unique_ptr<NormStack> model, ReplayPolicy policy) {
    return Incident(std::move(model), policy, stream(), allocator());
  }

  // A (fixed, non-legacy) model holding exactly `weights`: the eager reference
  // for what a stale graph computes.
  std::unique_ptr<NormStack> Loaded(std::unique_ptr<NormStack> model,
                                    const NamedTensors& weights) {
    absl::StatusOr<LoadReport> r =
        LoadWeights(*model, *WeightSet::FromTensors(weights));
    EXPECT_TRUE(r.ok()) << r.status();
    return model;
  }
};

class SglangQwen35Incident : public IncidentTest {};
class FixedLoader : public IncidentTest {};
class OffloadRestore : public IncidentTest {};
class StaleDerivedBuffer : public IncidentTest {};
class ResliceView : public IncidentTest {};
class LayoutChange : public IncidentTest {};
class StaticBuffers : public IncidentTest {};
class TiedWeights : public IncidentTest {};
class PackedBuffer : public IncidentTest {};

constexpr char kW0[] = "model.layers.0.linear_attn.norm.weight";
constexpr char kW1[] = "model.layers.1.linear_attn.norm.weight";
constexpr char kW2[] = "model.layers.2.linear_attn.norm.weight";

const ReplayPolicy kCheckedPolicies[] = {
    ReplayPolicy::kFail, ReplayPolicy::kRecapture, ReplayPolicy::kRebind};

TensorSlot* Slot(NormStack& model, absl::string_view full_name) {
  absl::string_view path = full_name;
  absl::ConsumePrefix(&path, "model.");
  TensorSlot* slot = model.FindSlot(path);
  EXPECT_NE(slot, nullptr) << full_name;
  return slot;
}

// Runs a replay after the slots `moved` were changed, under `policy`: fail
// must refuse naming exactly `moved` and launch nothing; recapture and rebind
// must equal eager bit for bit.
void ExpectCaughtAndRepaired(Incident& inc, ReplayPolicy policy,
                             std::vector<std::string> moved, uint64_t seed) {
  SCOPED_TRACE(ReplayPolicyName(policy));
  absl::Status s = inc.RunBoth(2, seed);
  if (policy == ReplayPolicy::kFail) {
    ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    std::vector<std::string> named = ViolationNames(s.message());
    std::sort(named.begin(), named.end());
    std::sort(moved.begin(), moved.end());
    EXPECT_EQ(named, moved) << s.message();
    EXPECT_TRUE(inc.NothingLaunched(2));
    return;
  }
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(inc.GraphEqualsEager());
}

// SGLang's Qwen3.5 incident: the pre-fix loader rebinds gemma_weight after
// capture.
TEST_P(SglangQwen35Incident, UncheckedReplayReadsStaleMemory) {
  Incident inc = MakeIncident(Qwen(/*legacy=*/true), ReplayPolicy::kUnchecked);
  const NamedTensors old_weights = Weights(inc.model(), 1);  // as loaded
  ASSERT_TRUE(inc.RunBoth(3, 10).ok());
  EXPECT_TRUE(inc.GraphEqualsEager())
      << "before the update, graph and eager agree";
  const NamedTensors update = Weights(inc.model(), 100);
  inc.Load(update);  // the RL weight update
  ASSERT_TRUE(inc.RunBoth(3, 10).ok());
  EXPECT_FALSE(inc.GraphEqualsEager())
      << "the graph must have read the old gemma_weight";
  EXPECT_EQ(inc.graphs().TotalStats().checks, 0);

  // The stale read, shown from the output: the replay computed exactly the
  // model whose zero-centred norms still hold the pre-update weights (the
  // gemma_weight storages the graph was captured with) and whose other norms
  // hold the update (loaded in place, so the graph does see it).
  const std::set<std::string> stale = DerivedSourceNames(inc.model());
  ASSERT_EQ(stale.size(), inc.ZeroCenteredBufferNames().size());
  ASSERT_EQ(old_weights.size(), update.size());
  NamedTensors as_replayed;
  for (size_t i = 0; i < update.size(); ++i) {
    ASSERT_EQ(old_weights[i].first, update[i].first);
    as_replayed.push_back(stale.count(update[i].first) > 0 ? old_weights[i]
                                                           : update[i]);
  }
  std::unique_ptr<NormStack> replayed_model =
      Loaded(Qwen(/*legacy=*/false), as_replayed);
  std::unique_ptr<StepBuffers> replayed = inc.EagerOn(*replayed_model);
  EXPECT_TRUE(inc.GraphEquals(*replayed))
      << "the replay must be the model with the old zero-centred weights";
  std::unique_ptr<NormStack> new_model = Loaded(Qwen(/*legacy=*/false), update);
  EXPECT_FALSE(inc.GraphEquals(*inc.EagerOn(*new_model)))
      << "the replay must differ from the updated model";
}

// With every norm zero-centred (Gemma3), the stale graph reproduces the *old*
// model exactly: proof that the replay read the old storage.
TEST_P(SglangQwen35Incident, UncheckedReplayIsExactlyTheOldModel) {
  Incident inc = MakeIncident(*Gemma3NormStack::Create(SmallGemma3(true)),
                              ReplayPolicy::kUnchecked);
  ASSERT_TRUE(inc.RunBoth(2, 20).ok());
  const Tensor old_out = *Clone(*inc.eager().Get("out"));
  inc.Load(Weights(inc.model(), 200));
  ASSERT_TRUE(inc.RunBoth(2, 20).ok());
  EXPECT_FALSE(
      BitwiseEqual(*inc.graph_io().Get("out"), *inc.eager().Get("out")));
  EXPECT_TRUE(BitwiseEqual(*inc.graph_io().Get("out"), old_out));
  // Every output, against an independent model holding the old weights.
  std::unique_ptr<NormStack> old_model = Loaded(
      *Gemma3NormStack::Create(SmallGemma3(false)), Weights(inc.model(), 1));
  EXPECT_TRUE(inc.GraphEquals(*inc.EagerOn(*old_model)));
  EXPECT_FALSE(inc.GraphEqualsEager());
  EXPECT_EQ(inc.graphs().TotalStats().checks, 0);
}

TEST_P(SglangQwen35Incident, FailPolicyNamesExactlyTheMovedBuffers) {
  Incident inc = MakeIncident(Qwen(true), ReplayPolicy::kFail);
  inc.Load(Weights(inc.model(), 100));
  absl::Status s = inc.RunBoth(3, 10);
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("replay refused"));
  EXPECT_THAT(s.message(), HasSubstr("nothing was launched"));
  EXPECT_THAT(s.message(),
              HasSubstr("rebound at layers/legacy_zero_centered_rms_norm.cc"));
  std::vector<std::string> named = ViolationNames(s.message());
  std::vector<std::string> expected = inc.ZeroCenteredBufferNames();
  EXPECT_EQ(expected.size(),
            4u * 2 + 1 * 2 + 1);  // every *.gemma_weight of the stack
  EXPECT_THAT(named, ::testing::UnorderedElementsAreArray(expected));
  EXPECT_TRUE(inc.NothingLaunched(4)) << "a refused replay must launch nothing";
  const GraphStats stats = inc.graphs().TotalStats();
  EXPECT_EQ(stats.refused, 1);
  EXPECT_EQ(stats.replays, 0);
  EXPECT_EQ(stats.violations, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(stats.violations_by_tensor.count(
                "model.layers.0.input_layernorm.gemma_weight"),
            1u);
  // Control: the same check sees a replay that did run.
  inc.graphs().set_policy(ReplayPolicy::kRecapture);
  ASSERT_TRUE(inc.RunBoth(3, 10).ok());
  EXPECT_FALSE(inc.NothingLaunched(4));
  EXPECT_TRUE(inc.GraphEqualsEager());
}

TEST_P(SglangQwen35Incident, RecaptureAndRebindRepairToEagerBitForBit) {
  for (ReplayPolicy policy :
       {ReplayPolicy::kRecapture, ReplayPolicy::kRebind}) {
    Incident inc = MakeIncident(Qwen(true), policy);
    for (int update = 0; update < 3; ++update) {
      inc.Load(Weights(inc.model(), 100 + update * 50));
      for (int64_t batch : {1, 3, 8}) {
        ASSERT_TRUE(inc.RunBoth(batch, 10 + batch).ok())
            << ReplayPolicyName(policy);
        EXPECT_TRUE(inc.GraphEqualsEager())
            << ReplayPolicyName(policy) << " batch " << batch;
      }
    }
    const GraphStats stats = inc.graphs().TotalStats();
    if (policy == ReplayPolicy::kRecapture) {
      EXPECT_GT(stats.recaptures, 0);
      EXPECT_EQ(stats.rebinds, 0);
    } else {
      EXPECT_GT(stats.rebinds, 0);
      EXPECT_EQ(stats.recaptures, 0)
          << "same layout: rebind never needs to recapture";
      EXPECT_GT(stats.rebound_args, 0);
    }
  }
}

// The fixed loader: any sequence of in-place updates keeps the graph valid,
// with no violation.
TEST_P(FixedLoader, AnyUpdateSequenceReplaysEqualToEager) {
  Incident inc = MakeIncident(Qwen(false), ReplayPolicy::kFail);
  std::vector<std::pair<std::string, Tensor>> all = Weights(inc.model(), 7);
  for (int round = 0; round < 12; ++round) {
    std::vector<std::pair<std::string, Tensor>> subset;
    for (size_t i = round % 3; i < all.size(); i += 1 + round % 4) {
      Tensor t = *Clone(all[i].second);  // host tensors, as a trainer pushes
      ASSERT_TRUE(FillNormal(t, 1000 + round * 31 + i, 0.0f, 0.3f).ok());
      subset.emplace_back(all[i].first, t);
    }
    inc.Load(subset);
    const int64_t batch = 1 + round % 8;
    ASSERT_TRUE(inc.RunBoth(batch, round).ok());
    EXPECT_TRUE(inc.GraphEqualsEager()) << "round " << round;
  }
  const GraphStats stats = inc.graphs().TotalStats();
  EXPECT_EQ(stats.violations, 0);
  EXPECT_EQ(stats.checks, 12);
  EXPECT_EQ(stats.replays, 12);
  EXPECT_EQ(stats.captures, 4) << "one per bucket, no recapture";
}

TEST_P(FixedLoader, WeightSwapsAToBToA) {
  Incident inc = MakeIncident(Qwen(false), ReplayPolicy::kFail);
  auto a = Weights(inc.model(), 1), b = Weights(inc.model(), 2);
  std::vector<Tensor> outs;
  for (auto* w : {&a, &b, &a}) {
    inc.Load(*w);
    ASSERT_TRUE(inc.RunBoth(4, 5).ok());  // outputs poisoned before each replay
    EXPECT_TRUE(inc.GraphEqualsEager());
    outs.push_back(*Clone(*inc.graph_io().Get("out")));
  }
  EXPECT_FALSE(BitwiseEqual(outs[0], outs[1]));
  EXPECT_TRUE(BitwiseEqual(outs[0], outs[2]));
}

// Offload and restore: the storage is freed and a new one allocated, at the
// same address (the caching allocator hands the block back). Only the storage
// id tells them apart.
TEST_P(OffloadRestore, CaughtThroughStorageIdEvenWhenTheAddressRepeats) {
  for (ReplayPolicy policy :
       {ReplayPolicy::kFail, ReplayPolicy::kRebind, ReplayPolicy::kRecapture}) {
    Incident inc = MakeIncident(Qwen(false), policy);
    const std::string name = "model.layers.0.linear_attn.norm.weight";
    TensorSlot* slot = inc.model().FindSlot("layers.0.linear_attn.norm.weight");
    const TensorIdentity before = slot->tensor().Identity();
    Tensor host = *ToHost(slot->tensor());  // offload to the host
    slot->Rebind(
        Tensor());  // offload: the only reference goes, the storage is freed
    ASSERT_FALSE(StorageIsLive(before.storage_id));
    Tensor restored = Empty(host.shape(), host.dtype());
    ASSERT_TRUE(CopyInto(ViewOf(host), restored).ok());
    slot->Rebind(restored);  // restore
    ASSERT_EQ(slot->tensor().Identity().address, before.address)
        << "same address again";
    ASSERT_NE(slot->tensor().Identity().storage_id, before.storage_id);

    absl::Status s = inc.RunBoth(2, 3);
    if (policy == ReplayPolicy::kFail) {
      ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_THAT(ViolationNames(s.message()), ::testing::ElementsAre(name));
      EXPECT_THAT(s.message(),
                  HasSubstr(absl::StrCat("storage #", before.storage_id)));
      EXPECT_TRUE(inc.NothingLaunched(2));
    } else {
      ASSERT_TRUE(s.ok()) << s;
      EXPECT_TRUE(inc.GraphEqualsEager());
    }
  }
}

// Offloaded and not restored yet: the slot holds no tensor. The refusal says
// so (not a made-up scalar's identity).
TEST_P(OffloadRestore, AReplayWhileOffloadedNamesTheUndefinedTensor) {
  Incident inc = MakeIncident(Qwen(false), ReplayPolicy::kFail);
  const std::string name = "model.layers.0.linear_attn.norm.weight";
  TensorSlot* slot = inc.model().FindSlot("layers.0.linear_attn.norm.weight");
  slot->Rebind(Tensor());
  absl::Status s = inc.RunBoth(2, 3, /*eager=*/false);
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(ViolationNames(s.message()), ::testing::ElementsAre(name));
  EXPECT_THAT(s.message(), HasSubstr("to an undefined tensor"));
  EXPECT_TRUE(inc.NothingLaunched(2));
}

// The dangerous variant: after the offload another tensor takes the freed
// block; the restored weight lands elsewhere. An unchecked replay reads the
// other tensor's bytes.
TEST_P(OffloadRestore, UncheckedReplayReadsAnotherTensorsBytes) {
  Incident inc = MakeIncident(Qwen(false), ReplayPolicy::kUnchecked);
  const std::string name = "model.layers.0.linear_attn.norm.weight";
  TensorSlot* slot = inc.model().FindSlot("layers.0.linear_attn.norm.weight");
  const uintptr_t old_address = slot->tensor().Identity().address;
  Tensor host = *ToHost(slot->tensor());
  slot->Rebind(Tensor());
  Tensor squatter = Empty(host.shape(), host.dtype());
  ASSERT_EQ(squatter.Identity().address, old_address);
  ASSERT_TRUE(Fill(squatter, 100.0f).ok());
  Tensor restored = Empty(host.shape(), host.dtype());
  ASSERT_TRUE(CopyInto(ViewOf(host), restored).ok());
  slot->Rebind(restored);
  ASSERT_TRUE(inc.RunBoth(2, 3).ok());
  EXPECT_FALSE(inc.GraphEqualsEager());

  // Shown from the output: the replay is exactly the model whose weight holds
  // the squatter's bytes.
  NamedTensors squatted = Weights(inc.model(), 1);  // as the Incident loaded
  bool found = false;
  for (auto& [weight_name, t] : squatted) {
    if (weight_name != name) continue;
    ASSERT_TRUE(Fill(t, 100.0f).ok());
    found = true;
  }
  ASSERT_TRUE(found);
  std::unique_ptr<NormStack> squatted_model = Loaded(Qwen(false), squatted);
  EXPECT_TRUE(inc.GraphEquals(*inc.EagerOn(*squatted_model)))
      << "the replay must have read the squatter's bytes";

  inc.graphs().set_policy(ReplayPolicy::kRebind);
  ASSERT_TRUE(inc.RunBoth(2, 3).ok());
  EXPECT_TRUE(inc.GraphEqualsEager());
}

// A source weight written without refreshing its derived buffer: right address,
// stale value.
TEST_P(StaleDerivedBuffer, CaughtByFreshness) {
  for (ReplayPolicy policy :
       {ReplayPolicy::kFail, ReplayPolicy::kRecapture, ReplayPolicy::kRebind}) {
    Incident inc = MakeIncident(Qwen(false), policy);
    ASSERT_TRUE(inc.RunBoth(2, 9).ok());
    const Tensor before = *Clone(*inc.eager().Get("out"));
    Parameter* w =
        inc.model().FindParameter("layers.1.post_attention_layernorm.weight");
    ASSERT_TRUE(Fill(w->tensor(), 0.75f)
                    .ok());  // bypasses the loader: gemma_weight not refreshed
    absl::Status s = inc.RunBoth(2, 9);
    if (policy == ReplayPolicy::kFail) {
      ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_THAT(ViolationNames(s.message()),
                  ::testing::ElementsAre(
                      "model.layers.1.post_attention_layernorm.gemma_weight"));
      EXPECT_THAT(s.message(), HasSubstr("stale: source storage"));
      EXPECT_TRUE(inc.NothingLaunched(2));
    } else {
      ASSERT_TRUE(s.ok()) << s;
      EXPECT_EQ(inc.graphs().TotalStats().refreshes, 1);
      // The repair refreshed gemma_weight; eager now runs with the new weight,
      // and the graph agrees with it.
      ASSERT_TRUE(inc.RunBoth(2, 9).ok());
      EXPECT_TRUE(inc.GraphEqualsEager());
      EXPECT_FALSE(BitwiseEqual(*inc.eager().Get("out"), before));
    }
  }
}

// Found by graph_replay_fuzzer: with the pre-fix module, refreshing a stale
// buffer reallocates it, so the repair must look again after refreshing and
// repair the move too.
TEST_P(StaleDerivedBuffer, RefreshThatMovesTheBufferIsRepairedToo) {
  for (ReplayPolicy policy :
       {ReplayPolicy::kRecapture, ReplayPolicy::kRebind}) {
    Incident inc = MakeIncident(Qwen(/*legacy=*/true), policy);
    Parameter* w = inc.model().FindParameter("layers.0.input_layernorm.weight");
    ASSERT_TRUE(Fill(w->tensor(), -0.5f).ok());  // stale, not moved
    ASSERT_TRUE(inc.RunBoth(4, 2).ok()) << ReplayPolicyName(policy);
    ASSERT_TRUE(inc.RunBoth(4, 2).ok());
    EXPECT_TRUE(inc.GraphEqualsEager()) << ReplayPolicyName(policy);
    EXPECT_EQ(inc.graphs().TotalStats().refreshes, 1);
  }
}

// A view re-sliced to another offset of the same storage: same storage id,
// other address.
TEST_P(ResliceView, CaughtByAddress) {
  Incident inc = MakeIncident(Qwen(false), ReplayPolicy::kRecapture);
  TensorSlot* slot = inc.model().FindSlot("layers.0.linear_attn.norm.weight");
  const Tensor original = slot->tensor();
  // Move the weight into the first half of a larger storage (a recapture
  // accepts that).
  Tensor big = Empty({2 * original.numel()}, original.dtype());
  Tensor first = *big.Narrow(0, 0, original.numel());
  ASSERT_TRUE(CopyInto(ViewOf(*ToHost(original)), first).ok());
  slot->Rebind(first);
  ASSERT_TRUE(inc.RunBoth(2, 4).ok());
  EXPECT_TRUE(inc.GraphEqualsEager());
  EXPECT_EQ(inc.graphs().TotalStats().recaptures, 1);

  // Now re-slice to the second half, with other contents.
  Tensor second = *big.Narrow(0, original.numel(), original.numel());
  ASSERT_TRUE(Fill(second, -2.0f).ok());
  slot->Rebind(second);
  inc.graphs().set_policy(ReplayPolicy::kFail);
  absl::Status s = inc.RunBoth(2, 4);
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(ViolationNames(s.message()),
              ::testing::ElementsAre("model.layers.0.linear_attn.norm.weight"));
  EXPECT_EQ(second.storage()->id(), first.storage()->id());
  EXPECT_TRUE(inc.NothingLaunched(2));
  inc.graphs().set_policy(ReplayPolicy::kRebind);
  ASSERT_TRUE(inc.RunBoth(2, 4).ok());
  EXPECT_TRUE(inc.GraphEqualsEager());
}

// A parameter rebound to a tensor of another dtype cannot be patched in place:
// rebind falls back to recapture.
TEST_P(LayoutChange, RebindFallsBackToRecapture) {
  Incident inc = MakeIncident(Qwen(false), ReplayPolicy::kRebind);
  TensorSlot* slot = inc.model().FindSlot("layers.0.linear_attn.norm.weight");
  Tensor f32 = Empty(slot->tensor().shape(), DType::kF32);
  ASSERT_TRUE(CopyInto(ViewOf(*ToHost(slot->tensor())), f32).ok());
  slot->Rebind(f32);
  ASSERT_TRUE(inc.RunBoth(3, 6).ok());
  EXPECT_TRUE(inc.GraphEqualsEager());
  EXPECT_EQ(inc.graphs().TotalStats().rebinds, 0);
  EXPECT_EQ(inc.graphs().TotalStats().recaptures, 1);
}

// A static buffer of the graph itself rebound by mistake is caught like any
// module tensor.
TEST_P(StaticBuffers, RebindingAStaticInputIsCaught) {
  Incident inc = MakeIncident(Qwen(false), ReplayPolicy::kFail);
  StepBuffers& statics = inc.graphs().static_buffers(4);
  Tensor fresh = Empty(statics.tensor(0).shape(), statics.tensor(0).dtype());
  ASSERT_TRUE(Poison(fresh).ok());
  const Tensor before = *Clone(fresh);
  statics.slot(0).Rebind(fresh);
  absl::Status s = inc.RunBoth(4, 1);
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(ViolationNames(s.message()),
              ::testing::ElementsAre("graph.b4.hidden_states"));
  EXPECT_TRUE(inc.NothingLaunched(4));
  // The refused step wrote nothing: not even its inputs into the rebound
  // buffer (which might be other memory, a weight's).
  EXPECT_TRUE(BitwiseEqual(fresh, before));
  EXPECT_EQ(inc.graphs().TotalStats().refused, 1);
}

// Two slots holding one tensor at capture (tied weights): each node depends
// on the slot the module read, so untying either side is caught for that side
// alone and repaired correctly (issue: the first slot visited used to own
// both nodes, and untying the other replayed silently wrong).
TEST_P(TiedWeights, UntyingEitherSideIsCaughtAndRepaired) {
  for (const char* untied : {kW1, kW0}) {
    for (ReplayPolicy policy : kCheckedPolicies) {
      SCOPED_TRACE(untied);
      std::unique_ptr<NormStack> model = Qwen(false);
      Slot(*model, kW1)->Rebind(Slot(*model, kW0)->tensor());
      Incident inc = MakeIncident(std::move(model), policy);
      ASSERT_TRUE(inc.RunBoth(2, 3).ok());
      ASSERT_TRUE(inc.GraphEqualsEager());
      // In-place updates through either tied slot are no violation.
      inc.Load(Weights(inc.model(), 9));
      ASSERT_TRUE(inc.RunBoth(2, 4).ok());
      EXPECT_TRUE(inc.GraphEqualsEager());
      EXPECT_EQ(inc.graphs().TotalStats().violations, 0);
      TensorSlot* slot = Slot(inc.model(), untied);
      slot->Rebind(Random(slot->tensor().shape(), slot->tensor().dtype(), 77,
                          1.0f, 0.3f));
      ExpectCaughtAndRepaired(inc, policy, {untied}, 5);
    }
  }
}

// Tying two slots after capture moves the one that was rebound.
TEST_P(TiedWeights, TyingAfterCaptureIsCaughtAndRepaired) {
  for (ReplayPolicy policy : kCheckedPolicies) {
    Incident inc = MakeIncident(Qwen(false), policy);
    ASSERT_TRUE(inc.RunBoth(2, 3).ok());
    Slot(inc.model(), kW1)->Rebind(Slot(inc.model(), kW0)->tensor());
    ExpectCaughtAndRepaired(inc, policy, {kW1}, 6);
  }
}

// Views of one packed buffer, as engines build for stacked norms: distinct
// offsets, and two modules sharing one offset. In-place writes into the packed
// storage are no violation; moving one view (to a free offset, or onto
// another module's view) is caught for that module alone.
TEST_P(PackedBuffer, MovingOneViewIsCaughtForThatModuleAlone) {
  for (ReplayPolicy policy : kCheckedPolicies) {
    std::unique_ptr<NormStack> model = Qwen(false);
    const Tensor w = Slot(*model, kW0)->tensor();
    const int64_t n = w.numel();
    Tensor packed = Empty({4 * n}, w.dtype());
    ASSERT_TRUE(FillNormal(packed, 31, 1.0f, 0.3f).ok());
    // layer 0 at offset 0, layer 1 at offset n, layer 2 shares offset n.
    Slot(*model, kW0)->Rebind(*packed.Narrow(0, 0, n));
    Slot(*model, kW1)->Rebind(*packed.Narrow(0, n, n));
    Slot(*model, kW2)->Rebind(*packed.Narrow(0, n, n));
    Incident inc = MakeIncident(std::move(model), policy);
    ASSERT_TRUE(inc.RunBoth(2, 3).ok());
    ASSERT_TRUE(inc.GraphEqualsEager());
    inc.Load(Weights(inc.model(), 12));  // in place, into the packed views
    ASSERT_TRUE(inc.RunBoth(2, 4).ok());
    EXPECT_TRUE(inc.GraphEqualsEager());
    EXPECT_EQ(inc.graphs().TotalStats().violations, 0);

    // Layer 2 leaves the shared offset for a free one.
    Slot(inc.model(), kW2)->Rebind(*packed.Narrow(0, 3 * n, n));
    ExpectCaughtAndRepaired(inc, policy, {kW2}, 7);
    if (policy == ReplayPolicy::kFail) continue;
    // Layer 0 moves onto layer 1's view (becoming aliased after capture).
    Slot(inc.model(), kW0)->Rebind(*packed.Narrow(0, n, n));
    ExpectCaughtAndRepaired(inc, policy, {kW0}, 8);
    EXPECT_GE(inc.graphs().TotalStats().rebinds +
                  inc.graphs().TotalStats().recaptures,
              2);
  }
}

// Zero-centred weights (sources of derived `1 + w` buffers) packed into one
// storage: loading one writes the storage the others derive from, so the
// loader refreshes every derived buffer left stale; in-place updates, full or
// partial, are never a violation.
TEST_P(PackedBuffer, PackedSourcesStayFreshThroughInPlaceLoads) {
  std::unique_ptr<NormStack> model = Qwen(false);
  std::vector<std::string> names;
  for (int layer = 0; layer < 4; ++layer) {
    names.push_back(
        absl::StrCat("model.layers.", layer, ".input_layernorm.weight"));
    names.push_back(absl::StrCat("model.layers.", layer,
                                 ".post_attention_layernorm.weight"));
  }
  const Tensor w = Slot(*model, names[0])->tensor();
  const int64_t n = w.numel();
  Tensor packed = Empty({static_cast<int64_t>(names.size()) * n}, w.dtype());
  for (size_t i = 0; i < names.size(); ++i) {
    TensorSlot* slot = Slot(*model, names[i]);
    Tensor view = *packed.Narrow(0, static_cast<int64_t>(i) * n, n);
    ASSERT_TRUE(CopyInto(ViewOf(*ToHost(slot->tensor())), view).ok());
    slot->Rebind(view);
  }
  Incident inc = MakeIncident(std::move(model), ReplayPolicy::kFail);
  for (uint64_t seed = 40; seed < 44; ++seed) {
    NamedTensors update = Weights(inc.model(), seed);
    if (seed % 2 == 1) update.resize(update.size() / 3);  // a partial update
    inc.Load(update);
    ASSERT_TRUE(inc.RunBoth(2, seed).ok());
    EXPECT_TRUE(inc.GraphEqualsEager());
  }
  EXPECT_EQ(inc.graphs().TotalStats().violations, 0);
}

// The zero-centred weights and their derived `1 + w` buffers all views of one
// arena (bf16 weights and f32 buffers in one storage): each refresh writes the
// storage the others live in, which must leave them fresh (RefreshWrites), or
// the fail policy refuses every replay and the repairs never converge. Loads
// full and partial, under every checked policy: no violation, no repair, the
// graph equal to eager. A write into the arena other than a load or refresh
// (bypassing the loader) then makes every buffer there stale (no byte
// ranges): refused, or refreshed once and converged.
TEST_P(PackedBuffer, DerivedBuffersPackedWithTheirSourcesStayFresh) {
  for (ReplayPolicy policy : kCheckedPolicies) {
    SCOPED_TRACE(ReplayPolicyName(policy));
    std::unique_ptr<NormStack> model = Qwen(false);
    std::vector<std::pair<TensorSlot*, TensorSlot*>> pairs;  // weight, 1 + w
    size_t bytes = 0;
    for (int layer = 0; layer < 4; ++layer) {
      for (const char* norm : {"input_layernorm", "post_attention_layernorm"}) {
        const std::string prefix =
            absl::StrCat("model.layers.", layer, ".", norm, ".");
        pairs.emplace_back(Slot(*model, prefix + "weight"),
                           Slot(*model, prefix + "gemma_weight"));
        for (TensorSlot* slot : {pairs.back().first, pairs.back().second}) {
          bytes += slot->tensor().span_bytes();
        }
      }
    }
    Tensor arena = Empty({static_cast<int64_t>(bytes / 2)}, DType::kBF16);
    size_t offset = 0;
    for (auto& [weight, derived] : pairs) {
      for (TensorSlot* slot : {weight, derived}) {
        const Tensor t = slot->tensor();
        Tensor view = *Tensor::FromStorage(arena.storage(), offset, t.shape(),
                                           t.strides(), t.dtype());
        ASSERT_TRUE(CopyInto(ViewOf(*ToHost(t)), view).ok());
        slot->Rebind(view);
        offset += t.span_bytes();
      }
    }
    for (auto& [weight, derived] : pairs) ASSERT_TRUE(derived->Refresh().ok());
    for (auto& [weight, derived] : pairs) {
      EXPECT_FALSE(derived->IsStale()) << derived->StaleReason();
    }
    Incident inc = MakeIncident(std::move(model), policy);
    for (uint64_t seed = 50; seed < 54; ++seed) {
      NamedTensors update = Weights(inc.model(), seed);
      if (seed % 2 == 1) update.resize(update.size() / 3);  // a partial update
      inc.Load(update);
      ASSERT_TRUE(inc.RunBoth(2, seed).ok());
      EXPECT_TRUE(inc.GraphEqualsEager());
    }
    const GraphStats stats = inc.graphs().TotalStats();
    EXPECT_EQ(stats.violations, 0);
    EXPECT_EQ(stats.recaptures + stats.rebinds, 0);
    // Layer 1's weight written in the arena behind the loader's back: its
    // gemma_weight is stale (and so is every buffer of the arena, which has
    // no byte ranges: all of them are named, or refreshed).
    TensorSlot* weight = pairs[2].first;
    ASSERT_TRUE(CopyInto(ViewOf(*ToHost(Random(weight->tensor().shape(),
                                               weight->tensor().dtype(), 91,
                                               0.0f, 0.3f))),
                         weight->tensor())
                    .ok());
    absl::Status s = inc.RunBoth(2, 60);
    if (policy == ReplayPolicy::kFail) {
      ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
      EXPECT_THAT(
          s.message(),
          testing::HasSubstr("model.layers.1.input_layernorm.gemma_weight"));
      EXPECT_TRUE(inc.NothingLaunched(2));
    } else {
      // The repair refreshed every buffer of the arena (eager, which ran
      // before it, read the stale ones); then it converged: the next replay
      // needs none and agrees with eager.
      ASSERT_TRUE(s.ok()) << s;
      const GraphStats before = inc.graphs().TotalStats();
      EXPECT_EQ(before.refreshes, static_cast<int64_t>(pairs.size()));
      ASSERT_TRUE(inc.RunBoth(2, 61).ok());
      EXPECT_TRUE(inc.GraphEqualsEager());
      const GraphStats after = inc.graphs().TotalStats();
      EXPECT_EQ(after.refreshes, before.refreshes);
      EXPECT_EQ(after.violations, before.violations);
    }
  }
}

NG_INSTANTIATE_BACKEND_TEST(TiedWeights);
NG_INSTANTIATE_BACKEND_TEST(PackedBuffer);
NG_INSTANTIATE_BACKEND_TEST(SglangQwen35Incident);
NG_INSTANTIATE_BACKEND_TEST(FixedLoader);
NG_INSTANTIATE_BACKEND_TEST(OffloadRestore);
NG_INSTANTIATE_BACKEND_TEST(StaleDerivedBuffer);
NG_INSTANTIATE_BACKEND_TEST(ResliceView);
NG_INSTANTIATE_BACKEND_TEST(LayoutChange);
NG_INSTANTIATE_BACKEND_TEST(StaticBuffers);

}  // namespace
}  // namespace normgraph
