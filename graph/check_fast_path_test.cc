// The identity check's fast path (IdentitySnapshot::VerifyFast, used by every
// CapturedGraph::Replay) on every backend: when nothing moved it does no
// per-tensor work, and it never skips a real change. Each kind of change a
// check can see is made after the fast path is armed, and the next replay must
// see it; a randomized walk compares the fast path's answer with the full
// check after every step. (The incident tests and the fuzzers run with the
// fast path too, and in debug and fuzzing builds every fast answer is audited
// against the full check: graph/identity_snapshot.h.)

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/step_buffers.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "core/testing/backends.h"
#include "gmock/gmock.h"
#include "graph/captured_graph.h"
#include "gtest/gtest.h"
#include "kernels/kernels.h"
#include "layers/qwen3_5_norm_stack.h"

namespace normgraph {
namespace {

using ::testing::HasSubstr;

// (kind, name) of each violation, in order.
std::vector<std::pair<int, std::string>> Summary(
    const std::vector<Violation>& violations) {
  std::vector<std::pair<int, std::string>> out;
  for (const Violation& v : violations) {
    out.emplace_back(static_cast<int>(v.kind), v.name);
  }
  return out;
}

class CheckFastPathTest : public BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    Qwen35NormStackConfig c;
    c.num_hidden_layers = 4;  // three linear-attention layers, one full
    c.hidden_size = 64;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.head_dim = 16;
    c.linear_num_value_heads = 2;
    c.linear_value_head_dim = 16;
    c.allocator = &allocator();
    auto model = Qwen35NormStack::Create(c);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
    auto step =
        StepBuffers::Create("graph.b2", model_->StepSpecs(2), allocator());
    ASSERT_TRUE(step.ok()) << step.status();
    step_ = *std::move(step);
    for (size_t i = 0; i < step_->size(); ++i) {
      ASSERT_TRUE(FillNormal(step_->tensor(i), i, 0.0f, 1.0f).ok());
    }
  }

  std::unique_ptr<CapturedGraph> Capture(ReplayPolicy policy) {
    GraphOptions options;
    options.policy = policy;
    auto graph = CapturedGraph::Capture(
        "decode/b2", stream(),
        [this](Stream& s) { return model_->Forward(s, *step_); },
        {model_.get(), step_.get()}, options);
    EXPECT_TRUE(graph.ok()) << graph.status();
    return graph.ok() ? *std::move(graph) : nullptr;
  }

  // Replays until the fast path answers (the first check after capture is
  // full).
  void Arm(CapturedGraph& graph) {
    ASSERT_TRUE(graph.Replay().ok());
    ASSERT_TRUE(graph.Replay().ok());
    ASSERT_GE(graph.snapshot().fast_checks(), 1);
  }

  TensorSlot& Slot(const std::string& path) {
    TensorSlot* slot = model_->FindSlot(path);
    EXPECT_NE(slot, nullptr) << path;
    return *slot;
  }

  std::unique_ptr<Qwen35NormStack> model_;
  std::unique_ptr<StepBuffers> step_;
};

TEST_P(CheckFastPathTest, NothingMovedMeansOneFullCheckThenFastOnes) {
  auto graph = Capture(ReplayPolicy::kFail);
  ASSERT_NE(graph, nullptr);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(graph->Replay().ok());
  EXPECT_EQ(graph->snapshot().full_checks(), 1);
  EXPECT_EQ(graph->snapshot().fast_checks(), 9);
  EXPECT_EQ(graph->stats().checks, 10);
  EXPECT_EQ(graph->stats().violations, 0);
}

TEST_P(CheckFastPathTest, AMovedParameterIsSeen) {
  auto graph = Capture(ReplayPolicy::kFail);
  ASSERT_NE(graph, nullptr);
  Arm(*graph);
  TensorSlot& slot = Slot("layers.1.post_attention_layernorm.gemma_weight");
  slot.Rebind(*Clone(slot.tensor()));
  absl::Status s = graph->Replay();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      s.message(),
      HasSubstr("model.layers.1.post_attention_layernorm.gemma_weight"));
}

TEST_P(CheckFastPathTest, AMovedStepBufferIsSeen) {
  auto graph = Capture(ReplayPolicy::kFail);
  ASSERT_NE(graph, nullptr);
  Arm(*graph);
  step_->slot(0).Rebind(*Clone(step_->tensor(0)));
  absl::Status s = graph->Replay();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("graph.b2.hidden_states"));
}

TEST_P(CheckFastPathTest, AWriteToTheSourceOfADerivedBufferIsSeen) {
  auto graph = Capture(ReplayPolicy::kFail);
  ASSERT_NE(graph, nullptr);
  Arm(*graph);
  // An in-place write that bypasses the loader (which would refresh
  // gemma_weight): the derived buffer is stale.
  ASSERT_TRUE(
      Fill(Slot("layers.2.input_layernorm.weight").tensor(), 0.5f).ok());
  absl::Status s = graph->Replay();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(),
              HasSubstr("model.layers.2.input_layernorm.gemma_weight: stale"));
  // Refreshed, the graph replays again, and the fast path re-arms.
  ASSERT_TRUE(Slot("layers.2.input_layernorm.gemma_weight").Refresh().ok());
  ASSERT_TRUE(graph->Replay().ok());
  ASSERT_TRUE(graph->Replay().ok());
  const int64_t fast = graph->snapshot().fast_checks();
  ASSERT_TRUE(graph->Replay().ok());
  EXPECT_EQ(graph->snapshot().fast_checks(), fast + 1);
}

TEST_P(CheckFastPathTest, AStructureChangeIsSeen) {
  auto graph = Capture(ReplayPolicy::kFail);
  ASSERT_NE(graph, nullptr);
  Arm(*graph);
  Module* layer = static_cast<Module*>(model_.get());
  layer->MarkStructureChanged();
  absl::Status s = graph->Replay();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("structure changed"));
}

TEST_P(CheckFastPathTest, AFreedUnownedArgumentIsSeen) {
  TensorSlot dst(SlotKind::kStatic, Empty({64}, DType::kF32));
  Tensor stray = Random({64}, DType::kF32, 3);
  struct Owner : TensorOwner {
    TensorSlot* slot;
    void ForEachSlot(SlotVisitor visit) override { visit("io.dst", *slot); }
  } owner;
  owner.slot = &dst;
  GraphOptions options;
  options.allow_unowned = true;
  auto graph = CapturedGraph::Capture(
      "copy", stream(),
      [&](Stream& s) {
        CopyParams p{stray.data(), dst.tensor().data(), 64 * 4};
        return s.Launch(CopyKernel(), p,
                        {{&p.src, &stray, Access::kRead},
                         {&p.dst, &dst.tensor(), Access::kWrite}});
      },
      {&owner}, options);
  ASSERT_TRUE(graph.ok()) << graph.status();
  Arm(**graph);
  stray = Tensor();
  absl::Status s = (*graph)->Replay();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("was freed"));
}

// A graph that itself writes the source of a derived buffer it reads: its own
// replay makes the buffer stale (MarkWritten bumps the source's write
// version), so the next replay must not take the fast path.
TEST_P(CheckFastPathTest, AGraphWritingADerivedSourceMakesTheNextCheckFull) {
  struct Owner : TensorOwner {
    explicit Owner(BackendTest* t, Tensor a, Tensor b, Tensor c, Tensor d)
        : src(SlotKind::kParameter, std::move(a)),
          derived(SlotKind::kBuffer, std::move(b)),
          input(SlotKind::kStatic, std::move(c)),
          out(SlotKind::kStatic, std::move(d)) {}
    void ForEachSlot(SlotVisitor visit) override {
      visit("m.src", src);
      visit("m.derived", derived);
      visit("io.input", input);
      visit("io.out", out);
    }
    TensorSlot src, derived, input, out;
  };
  Owner owner(this, Random({16}, DType::kF32, 1), Empty({16}, DType::kF32),
              Random({16}, DType::kF32, 2), Empty({16}, DType::kF32));
  auto copy = [](Stream& s, const Tensor& from, const Tensor& to) {
    CopyParams p{from.data(), to.data(), 16 * 4};
    return s.Launch(
        CopyKernel(), p,
        {{&p.src, &from, Access::kRead}, {&p.dst, &to, Access::kWrite}});
  };
  owner.derived.DeriveFrom(&owner.src, [&] {
    absl::Status s = copy(stream(), owner.src.tensor(), owner.derived.tensor());
    owner.derived.MarkRefreshed();
    return s;
  });
  ASSERT_TRUE(owner.derived.Refresh().ok());
  // Reads the derived buffer, then writes its source.
  auto graph = CapturedGraph::Capture(
      "rewrite", stream(),
      [&](Stream& s) {
        absl::Status r = copy(s, owner.derived.tensor(), owner.out.tensor());
        if (!r.ok()) return r;
        return copy(s, owner.input.tensor(), owner.src.tensor());
      },
      {&owner});
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_TRUE((*graph)->Replay().ok());  // full check, clean; writes src
  absl::Status s = (*graph)->Replay();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("m.derived: stale"));
  EXPECT_EQ((*graph)->snapshot().fast_checks(), 0);
}

// Two graphs over the same model: a change that one graph's check saw and
// repaired must still be seen by the other.
TEST_P(CheckFastPathTest, EveryGraphSeesAChangeAnotherGraphRepaired) {
  auto a = Capture(ReplayPolicy::kRebind);
  auto b = Capture(ReplayPolicy::kFail);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Arm(*a);
  Arm(*b);
  TensorSlot& slot = Slot("norm.gemma_weight");
  slot.Rebind(*Clone(slot.tensor()));
  ASSERT_TRUE(a->Replay().ok());
  EXPECT_EQ(a->stats().rebinds, 1);
  absl::Status s = b->Replay();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("model.norm.gemma_weight"));
}

// A random walk over the changes a check can see (and changes it must not
// report: a slot rebound back to its captured tensor, in-place writes with a
// refresh): after every step, the fast path's answer equals the full check's.
TEST_P(CheckFastPathTest, RandomWalkFastAnswerEqualsFullCheck) {
  auto graph = Capture(ReplayPolicy::kFail);
  ASSERT_NE(graph, nullptr);
  std::vector<TensorSlot*> slots;
  std::vector<Tensor> captured;
  model_->ForEachSlot(
      [&](absl::string_view, TensorSlot& slot) { slots.push_back(&slot); });
  step_->ForEachSlot(
      [&](absl::string_view, TensorSlot& slot) { slots.push_back(&slot); });
  for (TensorSlot* slot : slots) captured.push_back(slot->tensor());
  std::mt19937_64 rng(17);
  IdentitySnapshot snapshot = graph->snapshot();  // a copy we drive directly
  std::vector<Violation> fast, full;
  int fast_answers = 0;
  for (int step = 0; step < 400; ++step) {
    TensorSlot* slot = slots[rng() % slots.size()];
    const size_t index =
        std::find(slots.begin(), slots.end(), slot) - slots.begin();
    switch (rng() % 7) {
      case 0:  // moved to a copy
        slot->Rebind(*Clone(slot->tensor()));
        break;
      case 1:  // back to the captured tensor
        slot->Rebind(captured[index]);
        break;
      case 2:  // written in place (a source: its derived buffer goes stale)
        ASSERT_TRUE(Fill(slot->tensor(), 0.25f * (rng() % 5)).ok());
        break;
      case 3:  // refreshed, if derived
        if (slot->source() != nullptr) {
          ASSERT_TRUE(slot->Refresh().ok());
        }
        break;
      case 4:  // nothing at all
        break;
      case 5:  // every slot back and every derived buffer fresh
        for (size_t i = 0; i < slots.size(); ++i) slots[i]->Rebind(captured[i]);
        for (TensorSlot* s : slots) {
          if (s->source() != nullptr) {
            ASSERT_TRUE(s->Refresh().ok());
          }
        }
        break;
      case 6:  // a temporary freed
        (void)Empty({4}, DType::kF32);
        break;
    }
    for (int twice = 0; twice < 2; ++twice) {
      fast_answers += snapshot.VerifyFast(fast) ? 1 : 0;
      snapshot.Verify(full);
      ASSERT_EQ(Summary(fast), Summary(full)) << "step " << step;
    }
  }
  // The walk returns to clean states often enough for the fast path to answer.
  EXPECT_GT(fast_answers, 50);
}

NG_INSTANTIATE_BACKEND_TEST(CheckFastPathTest);

}  // namespace
}  // namespace normgraph
