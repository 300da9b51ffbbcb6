// CapturedGraph and BucketedGraphs on every backend (core/testing/backends.h):
// capture and replay on the fixture's stream, tensors from its allocator,
// results read back through ToFloats / BitwiseEqual (which synchronize).

#include "graph/captured_graph.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/step_buffers.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "core/testing/backends.h"
#include "gmock/gmock.h"
#include "graph/bucketed_graphs.h"
#include "gtest/gtest.h"
#include "kernels/kernels.h"

namespace normgraph {
namespace {

using ::testing::Each;
using ::testing::HasSubstr;

absl::Status Copy(Stream& stream, const Tensor& src, const Tensor& dst) {
  CopyParams p{src.data(), dst.data(),
               static_cast<int64_t>(src.numel() * DTypeSize(src.dtype()))};
  return stream.Launch(
      CopyKernel(), p,
      {{&p.src, &src, Access::kRead}, {&p.dst, &dst, Access::kWrite}});
}

// Two named slots: "a.src" and "a.dst", on the allocator's device.
class TwoSlots : public TensorOwner {
 public:
  explicit TwoSlots(Allocator& allocator)
      : src(SlotKind::kBuffer, *Tensor::Empty(allocator, {8}, DType::kF32)),
        dst(SlotKind::kBuffer, *Tensor::Empty(allocator, {8}, DType::kF32)) {}
  void ForEachSlot(SlotVisitor visit) override {
    visit("a.src", src);
    visit("a.dst", dst);
  }
  TensorSlot src, dst;
};

class CapturedGraphTest : public BackendTest {};

TEST_P(CapturedGraphTest,
       SnapshotNamesEveryTouchedTensorAndNothingMovedMeansNoWork) {
  TwoSlots owner(allocator());
  ASSERT_TRUE(Fill(owner.src.tensor(), 3.0f).ok());
  ASSERT_TRUE(Poison(owner.dst.tensor()).ok());
  auto graph = CapturedGraph::Capture("copy", stream(),
                                      [&](Stream& s) {
                                        return Copy(s, owner.src.tensor(),
                                                    owner.dst.tensor());
                                      },
                                      {&owner});
  ASSERT_TRUE(graph.ok()) << graph.status();
  const auto& tracked = (*graph)->snapshot().tensors();
  ASSERT_EQ(tracked.size(), 2u);
  EXPECT_EQ(tracked[0].name, "a.src");
  EXPECT_EQ(tracked[1].name, "a.dst");
  EXPECT_TRUE(CrossCheckNodePointers((*graph)->graph()).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*graph)->Replay().ok());
  ASSERT_TRUE(stream().Synchronize().ok());
  EXPECT_THAT(ToFloats(owner.dst.tensor()), Each(3.0f));
  const GraphStats& stats = (*graph)->stats();
  EXPECT_EQ(stats.checks, 5);
  EXPECT_EQ(stats.replays, 5);
  EXPECT_EQ(stats.violations, 0);
  EXPECT_EQ(stats.captures, 1);
  EXPECT_TRUE((*graph)->Check().empty());
}

TEST_P(CapturedGraphTest, UnownedArgumentsAreRefusedAtCapture) {
  TwoSlots owner(allocator());
  Tensor stray = Empty({8}, DType::kF32);
  auto graph = CapturedGraph::Capture(
      "stray", stream(),
      [&](Stream& s) { return Copy(s, stray, owner.dst.tensor()); }, {&owner});
  ASSERT_FALSE(graph.ok());
  EXPECT_THAT(graph.status().message(),
              HasSubstr("no module or step buffer owns"));
  EXPECT_THAT(graph.status().message(), HasSubstr("node 0 (copy) argument 0"));
  EXPECT_THAT(graph.status().message(),
              HasSubstr(absl::StrCat("storage #", stray.storage()->id())));
  EXPECT_FALSE(stream().is_capturing());

  // Allowed, an unowned argument is tracked by liveness: freeing it is a
  // violation.
  GraphOptions options;
  options.allow_unowned = true;
  auto lenient = CapturedGraph::Capture(
      "stray", stream(),
      [&](Stream& s) { return Copy(s, stray, owner.dst.tensor()); }, {&owner},
      options);
  ASSERT_TRUE(lenient.ok()) << lenient.status();
  ASSERT_TRUE(FillNormal(stray, 7, 0.0f, 1.0f).ok());
  ASSERT_TRUE((*lenient)->Replay().ok());
  EXPECT_TRUE(BitwiseEqual(owner.dst.tensor(), stray));
  const uint64_t id = stray.storage()->id();
  ASSERT_TRUE(Poison(owner.dst.tensor()).ok());
  stray = Tensor();
  absl::Status s = (*lenient)->Replay();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("<unowned>: storage #", id)));
  EXPECT_THAT(s.message(), HasSubstr("was freed"));
  // Refused: nothing ran, dst still holds the poison.
  ASSERT_TRUE(stream().Synchronize().ok());
  EXPECT_THAT(ToFloats(owner.dst.tensor()), Each(::testing::IsNan()));
  EXPECT_EQ((*lenient)->stats().replays, 1);
}

TEST_P(CapturedGraphTest, CheckHasNoSideEffectsAndPolicyCanChange) {
  TwoSlots owner(allocator());
  auto graph = *CapturedGraph::Capture("copy", stream(),
                                       [&](Stream& s) {
                                         return Copy(s, owner.src.tensor(),
                                                     owner.dst.tensor());
                                       },
                                       {&owner});
  owner.src.Rebind(FromFloats({8}, DType::kF32, {1, 2, 3, 4, 5, 6, 7, 8}));
  ASSERT_TRUE(Poison(owner.dst.tensor()).ok());
  EXPECT_EQ(graph->Check().size(), 1u);
  EXPECT_EQ(graph->Check().size(), 1u);
  EXPECT_EQ(graph->stats().checks, 0);
  EXPECT_FALSE(graph->Replay().ok());
  ASSERT_TRUE(stream().Synchronize().ok());
  EXPECT_THAT(ToFloats(owner.dst.tensor()), Each(::testing::IsNan()))
      << "a refused replay must launch nothing";
  graph->set_policy(ReplayPolicy::kRebind);
  ASSERT_TRUE(graph->Replay().ok());
  EXPECT_TRUE(graph->Check().empty());
  EXPECT_EQ(graph->stats().rebinds, 1);
  EXPECT_EQ(graph->stats().rebound_args, 1);
  EXPECT_EQ(graph->graph().nodes()[0].args[0].identity,
            owner.src.tensor().Identity());
  EXPECT_TRUE(CrossCheckNodePointers(graph->graph()).ok());
  // The patched node reads the new source.
  EXPECT_THAT(ToFloats(owner.dst.tensor()),
              ::testing::ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
}

TEST_P(CapturedGraphTest, FailedCaptureIsReported) {
  TwoSlots owner(allocator());
  auto graph = CapturedGraph::Capture(
      "bad", stream(), [](Stream&) { return absl::InternalError("boom"); },
      {&owner});
  EXPECT_THAT(graph.status().message(),
              HasSubstr("graph 'bad': capture failed: boom"));
  EXPECT_FALSE(stream().is_capturing());
}

NG_INSTANTIATE_BACKEND_TEST(CapturedGraphTest);

class BucketedGraphsTest : public BackendTest {};

TEST_P(BucketedGraphsTest, BucketsPadAndRouteBatches) {
  StepFunction step;
  step.specs = [](int64_t batch) {
    return std::vector<StepTensorSpec>{
        {"in", {batch, 3}, DType::kF32, StepRole::kInput},
        {"out", {batch, 3}, DType::kF32, StepRole::kOutput}};
  };
  step.forward = [](Stream& s, const StepBuffers& b) {
    return Copy(s, b.tensor(0), b.tensor(1));
  };
  auto graphs = BucketedGraphs::Create("copy", stream(), step, {4, 1, 2}, {},
                                       allocator());
  ASSERT_TRUE(graphs.ok()) << graphs.status();
  EXPECT_THAT((*graphs)->buckets(), ::testing::ElementsAre(1, 2, 4));
  EXPECT_EQ(*(*graphs)->BucketFor(3), 4);
  EXPECT_EQ(*(*graphs)->BucketFor(1), 1);
  EXPECT_FALSE((*graphs)->BucketFor(5).ok());
  EXPECT_FALSE((*graphs)->BucketFor(0).ok());

  // A batch of 3 runs in bucket 4: rows 0..2 are the inputs, row 3 is zero
  // padding.
  StepBuffers& statics = (*graphs)->static_buffers(4);
  ASSERT_TRUE(Fill(statics.tensor(0), 9.0f).ok());
  auto io = *StepBuffers::Create("io", step.specs(3), allocator());
  ASSERT_TRUE(FillNormal(io->tensor(0), 1, 0, 1).ok());
  ASSERT_TRUE(Poison(io->tensor(1)).ok());
  ASSERT_TRUE((*graphs)->Run(*io).ok());
  EXPECT_TRUE(BitwiseEqual(io->tensor(0), io->tensor(1)));
  const std::vector<float> padded = ToFloats(statics.tensor(1));
  ASSERT_EQ(padded.size(), 12u);
  for (int j = 9; j < 12; ++j) EXPECT_EQ(padded[j], 0.0f);
  EXPECT_EQ((*graphs)->TotalStats().replays, 1);

  auto too_big = *StepBuffers::Create("io", step.specs(5), allocator());
  EXPECT_EQ((*graphs)->Run(*too_big).code(), absl::StatusCode::kOutOfRange);
  EXPECT_FALSE(
      BucketedGraphs::Create("x", stream(), step, {0, 2}, {}, allocator())
          .ok());
  EXPECT_FALSE(
      BucketedGraphs::Create("x", stream(), step, {2, 2}, {}, allocator())
          .ok());
}

NG_INSTANTIATE_BACKEND_TEST(BucketedGraphsTest);

}  // namespace
}  // namespace normgraph
