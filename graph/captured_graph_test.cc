// CapturedGraph and BucketedGraphs on every backend (core/testing/backends.h):
// capture and replay on the fixture's stream, tensors from its allocator,
// results read back through ToFloats / BitwiseEqual (which synchronize).

#include "graph/captured_graph.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <tuple>
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
#include "layers/module.h"

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

class CapturedGraphTest : public BackendTest {
 protected:
  // A graph of one copy, owner.src -> owner.dst, owned by `owners` (by
  // default the owner alone).
  absl::StatusOr<std::unique_ptr<CapturedGraph>> CaptureCopy(
      TwoSlots& owner, GraphOptions options = {},
      std::vector<TensorOwner*> owners = {}, std::string name = "copy") {
    if (owners.empty()) owners = {&owner};
    return CapturedGraph::Capture(
        std::move(name), stream(),
        [&owner](Stream& s) {
          return Copy(s, owner.src.tensor(), owner.dst.tensor());
        },
        std::move(owners), options);
  }
};

TEST_P(CapturedGraphTest,
       SnapshotNamesEveryTouchedTensorAndNothingMovedMeansNoWork) {
  TwoSlots owner(allocator());
  ASSERT_TRUE(Fill(owner.src.tensor(), 3.0f).ok());
  ASSERT_TRUE(Poison(owner.dst.tensor()).ok());
  auto graph = CaptureCopy(owner);
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
  // The first check after the capture is a full one, the others take the
  // fast path; the stats count them apart.
  EXPECT_EQ(stats.fast_checks, 4);
  EXPECT_EQ(stats.fast_checks, (*graph)->snapshot().fast_checks());
  EXPECT_LE(stats.fast_check_ns, stats.check_ns);
  // Any storage freed (it may have been an argument) makes the next check a
  // full one again.
  { const Tensor scratch = Empty({8}, DType::kF32); }
  ASSERT_TRUE((*graph)->Replay().ok());
  EXPECT_EQ(stats.checks, 6);
  EXPECT_EQ(stats.fast_checks, 4);
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
  EXPECT_THAT(s.message(), HasSubstr("was freed (used by node 0 argument 0)"));
  // Refused: nothing ran, dst still holds the poison.
  ASSERT_TRUE(stream().Synchronize().ok());
  EXPECT_THAT(ToFloats(owner.dst.tensor()), Each(::testing::IsNan()));
  EXPECT_EQ((*lenient)->stats().replays, 1);
}

TEST_P(CapturedGraphTest, CheckHasNoSideEffectsAndPolicyCanChange) {
  TwoSlots owner(allocator());
  auto graph = *CaptureCopy(owner);
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

// A module whose forward path can change: it copies `in` to `out`; once it
// has a late buffer it copies that instead, and with `doubled` set it goes
// through `mid` (two kernels).
class SwitchableModule : public Module {
 public:
  explicit SwitchableModule(Allocator& allocator)
      : Module("m"), allocator_(allocator) {
    in_ = AddBuffer("in", *Tensor::Empty(allocator, {8}, DType::kF32));
    mid_ = AddBuffer("mid", *Tensor::Empty(allocator, {8}, DType::kF32));
    out_ = AddBuffer("out", *Tensor::Empty(allocator, {8}, DType::kF32));
  }
  absl::Status Forward(Stream& s) const {
    const Tensor& src = late_ != nullptr ? late_->tensor() : in_->tensor();
    if (!doubled_) return Copy(s, src, out_->tensor());
    absl::Status ok = Copy(s, src, mid_->tensor());
    return ok.ok() ? Copy(s, mid_->tensor(), out_->tensor()) : ok;
  }
  // A buffer added after capture (a subclass may call AddBuffer at any time).
  TensorSlot* AddLateBuffer(float value) {
    late_ = AddBuffer("late", *Tensor::Empty(allocator_, {8}, DType::kF32));
    EXPECT_TRUE(Fill(late_->tensor(), value).ok());
    return late_;
  }
  // A forward-path switch, reported as the Module contract asks.
  void set_doubled(bool doubled) {
    doubled_ = doubled;
    MarkStructureChanged();
  }
  TensorSlot& in() { return *in_; }
  TensorSlot& out() { return *out_; }

 private:
  Allocator& allocator_;
  TensorSlot *in_, *mid_, *out_, *late_ = nullptr;
  bool doubled_ = false;
};

absl::StatusOr<std::unique_ptr<CapturedGraph>> CaptureSwitchable(
    Stream& stream, SwitchableModule& m, ReplayPolicy policy) {
  GraphOptions options;
  options.policy = policy;
  return CapturedGraph::Capture(
      "switchable", stream, [&m](Stream& s) { return m.Forward(s); }, {&m},
      options);
}

// A buffer added after capture changes what Forward reads: a named structure
// violation under fail, a recapture under recapture and rebind.
TEST_P(CapturedGraphTest, LateBufferIsAStructureViolation) {
  for (ReplayPolicy policy :
       {ReplayPolicy::kFail, ReplayPolicy::kRecapture, ReplayPolicy::kRebind}) {
    SCOPED_TRACE(ReplayPolicyName(policy));
    SwitchableModule m(allocator());
    ASSERT_TRUE(Fill(m.in().tensor(), 1.0f).ok());
    auto graph = CaptureSwitchable(stream(), m, policy);
    ASSERT_TRUE(graph.ok()) << graph.status();
    ASSERT_TRUE((*graph)->Replay().ok());
    EXPECT_THAT(ToFloats(m.out().tensor()), Each(1.0f));
    m.AddLateBuffer(5.0f);
    ASSERT_TRUE(Poison(m.out().tensor()).ok());
    absl::Status s = (*graph)->Replay();
    if (policy == ReplayPolicy::kFail) {
      ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
      EXPECT_THAT(ViolationNames(s.message()), ::testing::ElementsAre("m"));
      EXPECT_THAT(s.message(), HasSubstr("m: structure changed since capture"));
      ASSERT_TRUE(stream().Synchronize().ok());
      EXPECT_THAT(ToFloats(m.out().tensor()), Each(::testing::IsNan()));
      continue;
    }
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_THAT(ToFloats(m.out().tensor()), Each(5.0f)) << "the new path";
    EXPECT_EQ((*graph)->stats().recaptures, 1);
    EXPECT_TRUE((*graph)->Check().empty());
  }
}

TEST_P(CapturedGraphTest, ForwardPathSwitchIsAStructureViolation) {
  SwitchableModule m(allocator());
  ASSERT_TRUE(Fill(m.in().tensor(), 2.0f).ok());
  auto graph = *CaptureSwitchable(stream(), m, ReplayPolicy::kFail);
  EXPECT_EQ(graph->graph().nodes().size(), 1u);
  m.set_doubled(true);
  absl::Status s = graph->Replay();
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(ViolationNames(s.message()), ::testing::ElementsAre("m"));
  graph->set_policy(ReplayPolicy::kRecapture);
  ASSERT_TRUE(graph->Replay().ok());
  EXPECT_EQ(graph->graph().nodes().size(), 2u) << "recaptured the new path";
  EXPECT_THAT(ToFloats(m.out().tensor()), Each(2.0f));
  // A switch back and forth is a change too: the graph holds the 2-node path.
  m.set_doubled(false);
  m.set_doubled(true);
  graph->set_policy(ReplayPolicy::kFail);
  EXPECT_FALSE(graph->Replay().ok());
}

// Invalidate(): a recapture before the next replay, whatever the policy.
TEST_P(CapturedGraphTest, InvalidateForcesARecapture) {
  SwitchableModule m(allocator());
  ASSERT_TRUE(Fill(m.in().tensor(), 3.0f).ok());
  auto graph = *CaptureSwitchable(stream(), m, ReplayPolicy::kFail);
  graph->Invalidate();
  EXPECT_TRUE(graph->invalidated());
  ASSERT_TRUE(graph->Replay().ok());
  EXPECT_FALSE(graph->invalidated());
  EXPECT_EQ(graph->stats().recaptures, 1);
  EXPECT_EQ(graph->stats().captures, 2);
  ASSERT_TRUE(graph->Recapture().ok());
  EXPECT_EQ(graph->stats().recaptures, 2);
  EXPECT_THAT(ToFloats(m.out().tensor()), Each(3.0f));
}

// Declares `derived` a copy of `source`: its refresh copies the source's
// values in (in place) and marks it refreshed.
void DeriveCopy(TensorSlot& derived, const TensorSlot& source) {
  derived.DeriveFrom(&source, [&derived, &source] {
    absl::StatusOr<Tensor> values = ToHost(source.tensor());
    if (!values.ok()) return values.status();
    absl::Status ok = CopyInto(ViewOf(*values), derived.tensor());
    if (ok.ok()) derived.MarkRefreshed();
    return ok;
  });
}

// Replays bump the write version of what they write, so a derived buffer
// whose source a graph writes goes stale: graph 1 writes `mid`, `derived` is
// declared derived from `mid`, graph 2 reads `derived`.
class DerivedFromMid : public TensorOwner {
 public:
  explicit DerivedFromMid(Allocator& allocator)
      : src(SlotKind::kBuffer, *Tensor::Empty(allocator, {8}, DType::kF32)),
        mid(SlotKind::kBuffer, *Tensor::Empty(allocator, {8}, DType::kF32)),
        derived(SlotKind::kBuffer, *Tensor::Empty(allocator, {8}, DType::kF32)),
        out(SlotKind::kBuffer, *Tensor::Empty(allocator, {8}, DType::kF32)) {
    DeriveCopy(derived, mid);
  }
  void ForEachSlot(SlotVisitor visit) override {
    visit("o.src", src);
    visit("o.mid", mid);
    visit("o.derived", derived);
    visit("o.out", out);
  }
  TensorSlot src, mid, derived, out;
};

TEST_P(CapturedGraphTest, ReplaysMakeTheSourcesTheyWriteStale) {
  for (ReplayPolicy policy :
       {ReplayPolicy::kFail, ReplayPolicy::kRecapture, ReplayPolicy::kRebind}) {
    SCOPED_TRACE(ReplayPolicyName(policy));
    DerivedFromMid o(allocator());
    ASSERT_TRUE(Fill(o.src.tensor(), 4.0f).ok());
    ASSERT_TRUE(Fill(o.mid.tensor(), 0.0f).ok());
    ASSERT_TRUE(o.derived.Refresh().ok());
    GraphOptions options;
    options.policy = policy;
    auto writer = *CapturedGraph::Capture(
        "writer", stream(),
        [&](Stream& s) { return Copy(s, o.src.tensor(), o.mid.tensor()); },
        {&o}, options);
    auto reader = *CapturedGraph::Capture(
        "reader", stream(),
        [&](Stream& s) { return Copy(s, o.derived.tensor(), o.out.tensor()); },
        {&o}, options);
    ASSERT_TRUE(reader->Replay().ok());  // fresh: derived holds mid's zeros
    EXPECT_THAT(ToFloats(o.out.tensor()), Each(0.0f));
    const uint64_t mid_before = o.mid.tensor().storage()->write_version();
    const uint64_t src_before = o.src.tensor().storage()->write_version();
    ASSERT_TRUE(writer->Replay().ok());
    EXPECT_EQ(o.mid.tensor().storage()->write_version(), mid_before + 1);
    EXPECT_EQ(o.src.tensor().storage()->write_version(), src_before)
        << "read-only arguments are not bumped";
    EXPECT_TRUE(o.derived.IsStale());
    ASSERT_TRUE(Poison(o.out.tensor()).ok());
    absl::Status s = reader->Replay();
    if (policy == ReplayPolicy::kFail) {
      ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
      EXPECT_THAT(ViolationNames(s.message()),
                  ::testing::ElementsAre("o.derived"));
      ASSERT_TRUE(stream().Synchronize().ok());
      EXPECT_THAT(ToFloats(o.out.tensor()), Each(::testing::IsNan()));
      continue;
    }
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(reader->stats().refreshes, 1);
    EXPECT_THAT(ToFloats(o.out.tensor()), Each(4.0f))
        << "the refreshed derived buffer holds what the writer graph wrote";
  }
}

// Params that reach past the tensors bound to them are refused at launch,
// eager or captured, before anything runs: each pointer's tensor must span
// every byte the kernel touches from it.
TEST_P(CapturedGraphTest, LaunchesMayNotReachPastTheirTensors) {
  Tensor a = Empty({8}, DType::kF32), b = Empty({8}, DType::kF32);
  CopyParams c{a.data(), b.data(), 64};  // 16 floats from tensors of 8
  absl::Status s = stream().Launch(
      CopyKernel(), c,
      {{&c.src, &a, Access::kRead}, {&c.dst, &b, Access::kWrite}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("reaches 64 bytes"));
  EXPECT_THAT(s.message(), HasSubstr("which spans 32"));
  Tensor x = Empty({1, 8}, DType::kBF16), w = Empty({8}, DType::kBF16);
  Tensor out = Empty({1, 8}, DType::kBF16);
  RmsNormParams p;
  p.x = x.data();
  p.weight = w.data();
  p.out = out.data();
  p.rows = 4;  // the tensors hold one row
  p.cols = 8;
  p.x_stride = p.out_stride = 8;
  auto launch = [&] {
    return stream().Launch(RmsNormKernel(), p,
                           {{&p.x, &x, Access::kRead},
                            {&p.weight, &w, Access::kRead},
                            {&p.out, &out, Access::kWrite}});
  };
  s = launch();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("reaches 64 bytes"));
  ASSERT_TRUE(stream().BeginCapture().ok());
  EXPECT_FALSE(launch().ok());
  EXPECT_FALSE(stream().EndCapture().ok());
  EXPECT_EQ(stream().eager_launches(), 0);
  p.rows = 1;
  EXPECT_TRUE(launch().ok());
}

// A derived buffer written by anything but its refresh (a direct fill, a
// copy into it) may no longer hold what its source gives: it is stale, and
// the next checked replay refuses or refreshes it.
TEST_P(CapturedGraphTest, DerivedBufferWrittenDirectlyIsStale) {
  for (ReplayPolicy policy : {ReplayPolicy::kFail, ReplayPolicy::kRecapture}) {
    SCOPED_TRACE(ReplayPolicyName(policy));
    DerivedFromMid o(allocator());
    ASSERT_TRUE(Fill(o.mid.tensor(), 2.0f).ok());
    ASSERT_TRUE(o.derived.Refresh().ok());
    ASSERT_FALSE(o.derived.IsStale());
    GraphOptions options;
    options.policy = policy;
    auto reader = *CapturedGraph::Capture(
        "reader", stream(),
        [&](Stream& s) { return Copy(s, o.derived.tensor(), o.out.tensor()); },
        {&o}, options);
    ASSERT_TRUE(reader->Replay().ok());
    ASSERT_TRUE(Fill(o.derived.tensor(), 5.0f).ok());
    EXPECT_TRUE(o.derived.IsStale());
    EXPECT_THAT(o.derived.StaleReason(), HasSubstr("its own storage"));
    ASSERT_TRUE(Poison(o.out.tensor()).ok());
    absl::Status s = reader->Replay();
    if (policy == ReplayPolicy::kFail) {
      ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
      EXPECT_THAT(ViolationNames(s.message()),
                  ::testing::ElementsAre("o.derived"));
      continue;
    }
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(reader->stats().refreshes, 1);
    EXPECT_THAT(ToFloats(o.out.tensor()), Each(2.0f));
  }
}

// Derived buffers packed into one storage that another slot covers whole (a
// buffer of every layer's norm weights), and a kernel bound to that packed
// slot: it reads the derived buffers' bytes, so their freshness is checked
// although no node was bound to them; where they point is not (the node reads
// the packed slot's bytes).
class PackedDerived : public TensorOwner {
 public:
  explicit PackedDerived(Allocator& allocator)
      : src(SlotKind::kParameter, *Tensor::Empty(allocator, {4}, DType::kF32)),
        packed(SlotKind::kBuffer, *Tensor::Empty(allocator, {8}, DType::kF32)),
        derived(SlotKind::kBuffer, *packed.tensor().Narrow(0, 0, 4)),
        out(SlotKind::kBuffer, *Tensor::Empty(allocator, {8}, DType::kF32)) {
    DeriveCopy(derived, src);
  }
  void ForEachSlot(SlotVisitor visit) override {
    visit("o.src", src);
    visit("o.packed", packed);
    visit("o.derived", derived);
    visit("o.out", out);
  }
  TensorSlot src, packed, derived, out;
};

TEST_P(CapturedGraphTest, DerivedBuffersReadThroughAPackedSlotAreChecked) {
  for (ReplayPolicy policy : {ReplayPolicy::kFail, ReplayPolicy::kRecapture}) {
    SCOPED_TRACE(ReplayPolicyName(policy));
    PackedDerived o(allocator());
    ASSERT_TRUE(Fill(o.packed.tensor(), 0.0f).ok());
    ASSERT_TRUE(Fill(o.src.tensor(), 2.0f).ok());
    ASSERT_TRUE(o.derived.Refresh().ok());
    GraphOptions options;
    options.policy = policy;
    auto reader = *CapturedGraph::Capture(
        "reader", stream(),
        [&](Stream& s) { return Copy(s, o.packed.tensor(), o.out.tensor()); },
        {&o}, options);
    ASSERT_TRUE(reader->Replay().ok());
    EXPECT_THAT(ToFloats(o.out.tensor()),
                ::testing::ElementsAre(2, 2, 2, 2, 0, 0, 0, 0));
    ASSERT_TRUE(Fill(o.src.tensor(), 3.0f).ok());
    ASSERT_TRUE(o.derived.IsStale());
    ASSERT_TRUE(Poison(o.out.tensor()).ok());
    absl::Status s = reader->Replay();
    if (policy == ReplayPolicy::kFail) {
      ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
      EXPECT_THAT(ViolationNames(s.message()),
                  ::testing::ElementsAre("o.derived"));
      continue;
    }
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(reader->stats().refreshes, 1);
    EXPECT_THAT(ToFloats(o.out.tensor()),
                ::testing::ElementsAre(3, 3, 3, 3, 0, 0, 0, 0));
    // Re-pointed elsewhere, it is no violation of this graph (refreshed
    // there, it is fresh; the graph still reads the packed bytes).
    o.derived.Rebind(*Tensor::Empty(allocator(), {4}, DType::kF32));
    ASSERT_TRUE(o.derived.Refresh().ok());
    EXPECT_TRUE(reader->Check().empty());
  }
}

// Whatever checks the writer graph skips, its replays still count as writes:
// an unchecked writer, or one whose destination no owner of it claims, makes
// the derived buffers of what it wrote stale for every other graph.
TEST_P(CapturedGraphTest, UncheckedAndUnownedWritersMakeSourcesStale) {
  for (const bool unowned : {false, true}) {
    SCOPED_TRACE(unowned ? "unowned writer" : "unchecked writer");
    DerivedFromMid o(allocator());
    ASSERT_TRUE(Fill(o.src.tensor(), 4.0f).ok());
    ASSERT_TRUE(Fill(o.mid.tensor(), 0.0f).ok());
    ASSERT_TRUE(o.derived.Refresh().ok());
    GraphOptions writer_options;
    std::vector<TensorOwner*> writer_owners = {&o};
    if (unowned) {
      writer_options.allow_unowned = true;
      writer_owners.clear();
    } else {
      writer_options.policy = ReplayPolicy::kUnchecked;
    }
    auto writer = CapturedGraph::Capture(
        "writer", stream(),
        [&](Stream& s) { return Copy(s, o.src.tensor(), o.mid.tensor()); },
        writer_owners, writer_options);
    ASSERT_TRUE(writer.ok()) << writer.status();
    auto reader = *CapturedGraph::Capture(
        "reader", stream(),
        [&](Stream& s) { return Copy(s, o.derived.tensor(), o.out.tensor()); },
        {&o});
    ASSERT_TRUE(reader->Replay().ok());
    const uint64_t mid_before = o.mid.tensor().storage()->write_version();
    ASSERT_TRUE((*writer)->Replay().ok());
    EXPECT_EQ(o.mid.tensor().storage()->write_version(), mid_before + 1);
    EXPECT_TRUE(o.derived.IsStale());
    absl::Status s = reader->Replay();
    ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(ViolationNames(s.message()),
                ::testing::ElementsAre("o.derived"));
  }
}

// An unchecked replay after its output slot moved still writes the storage it
// captured: that storage's write version moves (a derived buffer whose source
// it is, through a tied slot, goes stale), not the slot's new one.
TEST_P(CapturedGraphTest, UncheckedReplayBumpsTheStorageItWrote) {
  TwoSlots owner(allocator());
  ASSERT_TRUE(Fill(owner.src.tensor(), 3.0f).ok());
  ASSERT_TRUE(Fill(owner.dst.tensor(), 0.0f).ok());
  GraphOptions unchecked;
  unchecked.policy = ReplayPolicy::kUnchecked;
  auto graph = *CaptureCopy(owner, unchecked);
  const Tensor captured_dst = owner.dst.tensor();
  const Tensor moved = *Tensor::Empty(allocator(), {8}, DType::kF32);
  ASSERT_TRUE(Fill(moved, 0.0f).ok());
  owner.dst.Rebind(moved);
  const uint64_t captured_before = captured_dst.storage()->write_version();
  const uint64_t moved_before = moved.storage()->write_version();
  ASSERT_TRUE(graph->Replay().ok());
  EXPECT_THAT(ToFloats(captured_dst), Each(3.0f));
  EXPECT_THAT(ToFloats(moved), Each(0.0f));
  EXPECT_EQ(captured_dst.storage()->write_version(), captured_before + 1);
  EXPECT_EQ(moved.storage()->write_version(), moved_before);
}

// A view of a storage of f32 elements: its byte offset, shape and strides.
struct ViewLayout {
  size_t offset;
  Shape shape;
  Shape strides;
};

// Two slots `a` and `b`, views of one storage (every element 2.0), and an
// output slot of a read's shape.
class TwoViews : public TensorOwner {
 public:
  TwoViews(Allocator& allocator, size_t bytes, const ViewLayout& a_layout,
           const ViewLayout& b_layout, const Shape& out_shape)
      : storage(*Storage::Allocate(allocator, bytes)),
        a(SlotKind::kBuffer, View(a_layout)),
        b(SlotKind::kBuffer, View(b_layout)),
        out(SlotKind::kBuffer,
            *Tensor::Empty(allocator, out_shape, DType::kF32)) {
    const int64_t elements = static_cast<int64_t>(bytes / 4);
    EXPECT_TRUE(Fill(View({0, {elements}, {1}}), 2.0f).ok());
  }
  Tensor View(const ViewLayout& layout) const {
    return *Tensor::FromStorage(storage, layout.offset, layout.shape,
                                layout.strides, DType::kF32);
  }
  void ForEachSlot(SlotVisitor visit) override {
    visit("c.a", a);
    visit("c.b", b);
    visit("c.out", out);
  }
  std::shared_ptr<Storage> storage;
  TensorSlot a, b, out;
};

// A graph copying the view `read` of `c`'s storage (a temporary, no slot's
// own tensor: the snapshot credits it to slots by the bytes it covers) into
// `c.out`.
absl::StatusOr<std::unique_ptr<CapturedGraph>> CaptureReadOf(
    Stream& stream, TwoViews& c, const ViewLayout& read, ReplayPolicy policy) {
  GraphOptions options;
  options.policy = policy;
  return CapturedGraph::Capture(
      "read", stream,
      [&c, read](Stream& s) { return Copy(s, c.View(read), c.out.tensor()); },
      {&c}, options);
}

// Two slots that are interleaved column slices of one buffer ([2, 4] views
// with row stride 8, at columns 0 and 4): each one's span covers the other's
// columns.
TwoViews InterleavedColumns(Allocator& allocator, const Shape& out_shape) {
  return TwoViews(allocator, 64, {0, {2, 4}, {8, 1}}, {16, {2, 4}, {8, 1}},
                  out_shape);
}

// A node reading a temporary view of a row of `b` read `b` only, so `a`
// moving is no violation (it was: an ambiguous use of both), and `b` moving
// is one.
TEST_P(CapturedGraphTest, AMovedNeighbourColumnSliceIsNoViolation) {
  TwoViews c = InterleavedColumns(allocator(), {4});
  auto graph = CaptureReadOf(stream(), c, {16, {4}, {1}}, ReplayPolicy::kFail);
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_TRUE((*graph)->Replay().ok());
  c.a.Rebind(*Tensor::Empty(allocator(), {2, 4}, DType::kF32));
  absl::Status s = (*graph)->Replay();
  EXPECT_TRUE(s.ok()) << s;
  c.b.Rebind(*Tensor::Empty(allocator(), {2, 4}, DType::kF32));
  s = (*graph)->Replay();
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(ViolationNames(s.message()), ::testing::ElementsAre("c.b"));
  EXPECT_EQ((*graph)->stats().violations_by_tensor.count("c.a"), 0u);
}

// A node reading one row of `b` through a view of shape [1, 4] whose row
// stride is the buffer's (8), not 4 (b.Narrow(0, 0, 1)): a dense read all the
// same, which only `b` gives (a size-1 dimension's stride says nothing of the
// layout).
TEST_P(CapturedGraphTest, ARowNarrowedFromAColumnSliceIsReadFromItAlone) {
  TwoViews c = InterleavedColumns(allocator(), {1, 4});
  ASSERT_EQ(c.View({16, {1, 4}, {8, 1}}).Identity(),
            c.b.tensor().Narrow(0, 0, 1)->Identity());
  auto graph =
      CaptureReadOf(stream(), c, {16, {1, 4}, {8, 1}}, ReplayPolicy::kFail);
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_TRUE((*graph)->Replay().ok());
  c.a.Rebind(*Tensor::Empty(allocator(), {2, 4}, DType::kF32));
  absl::Status s = (*graph)->Replay();
  EXPECT_TRUE(s.ok()) << s;
  c.b.Rebind(*Tensor::Empty(allocator(), {2, 4}, DType::kF32));
  s = (*graph)->Replay();
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(ViolationNames(s.message()), ::testing::ElementsAre("c.b"));
}

// A node reading bytes 0-31 of the buffer whole: `a`'s span holds them, but
// its elements only the first 16 (row 0's columns 0-3); the next 16 are
// `b`'s row 0. So the read is of both: `b` moving is a violation too (it
// went unchecked: `a` alone was credited with the read).
TEST_P(CapturedGraphTest, AReadReachingAStridedSlotsGapChecksTheSlotThere) {
  for (const ReplayPolicy policy :
       {ReplayPolicy::kFail, ReplayPolicy::kRebind}) {
    TwoViews c = InterleavedColumns(allocator(), {8});
    auto graph = CaptureReadOf(stream(), c, {0, {8}, {1}}, policy);
    ASSERT_TRUE(graph.ok()) << graph.status();
    ASSERT_TRUE((*graph)->Replay().ok());
    c.b.Rebind(FromFloats({2, 4}, DType::kF32, {5, 6, 7, 8, 9, 9, 9, 9}));
    absl::Status s = (*graph)->Replay();
    if (policy == ReplayPolicy::kFail) {
      ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
      EXPECT_THAT(ViolationNames(s.message()), ::testing::ElementsAre("c.b"));
    } else {
      // Neither slot alone gave the read: a recapture, which reads the
      // buffer as the step says.
      ASSERT_TRUE(s.ok()) << s;
      EXPECT_EQ((*graph)->stats().recaptures, 1);
      EXPECT_EQ((*graph)->stats().rebinds, 0);
    }
  }
}

// A slot [2, 3, 3] with strides [11, 4, 1] (elements): its blocks of three
// rows of three touch (element 10 ends the first, 11 starts the second). A
// node reading elements 10 and 11 read them from it (and from `b`, the slot
// of exactly those two): its moving is a violation.
TEST_P(CapturedGraphTest, ASlotWhoseBlocksTouchHoldsAReadAcrossThem) {
  TwoViews c(allocator(), 88, {0, {2, 3, 3}, {11, 4, 1}}, {40, {2}, {1}}, {2});
  auto graph = CaptureReadOf(stream(), c, {40, {2}, {1}}, ReplayPolicy::kFail);
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_TRUE((*graph)->Replay().ok());
  c.a.Rebind(*Tensor::Empty(allocator(), {2, 3, 3}, DType::kF32));
  absl::Status s = (*graph)->Replay();
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(ViolationNames(s.message()), ::testing::ElementsAre("c.a"));
}

// A slot whose dimensions interleave (strides 4, 3, 2 elements: the inner two
// together reach 5 elements past their first, beyond the outer stride) and a
// one-element slot at element 5, which the first also holds (2 + 3). A node
// reading that element through a temporary view may have read either: the
// first moving must be reported (an interleaved layout is never taken apart
// greedily, which would find element 5 in a gap).
TEST_P(CapturedGraphTest, AnInterleavedSlotHoldingTheBytesReadIsChecked) {
  TwoViews c(allocator(), 48, {0, {2, 2, 2}, {4, 3, 2}}, {20, {1}, {1}}, {1});
  auto graph = CaptureReadOf(stream(), c, {20, {1}, {1}}, ReplayPolicy::kFail);
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_TRUE((*graph)->Replay().ok());
  c.a.Rebind(*Tensor::Empty(allocator(), {2, 2, 2}, DType::kF32));
  absl::Status s = (*graph)->Replay();
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(ViolationNames(s.message()), ::testing::Contains("c.a"));
}

// An owner listed twice offers each slot twice: still one candidate per slot,
// so a moved tensor is rebound (an ambiguous use would force a recapture).
TEST_P(CapturedGraphTest, OwnerListedTwiceStillRebinds) {
  TwoSlots owner(allocator());
  GraphOptions options;
  options.policy = ReplayPolicy::kRebind;
  auto graph = CaptureCopy(owner, options, {&owner, &owner});
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ((*graph)->snapshot().tensors().size(), 2u);
  for (const TrackedTensor& t : (*graph)->snapshot().tensors()) {
    ASSERT_EQ(t.uses.size(), 1u) << t.name;
    EXPECT_FALSE(t.uses[0].ambiguous) << t.name;
  }
  owner.src.Rebind(FromFloats({8}, DType::kF32, {1, 2, 3, 4, 5, 6, 7, 8}));
  ASSERT_TRUE((*graph)->Replay().ok());
  EXPECT_EQ((*graph)->stats().rebinds, 1);
  EXPECT_EQ((*graph)->stats().recaptures, 0);
  EXPECT_THAT(ToFloats(owner.dst.tensor()),
              ::testing::ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
}

// Slots moved so that the copy's source and destination partially overlap:
// eager refuses that launch (ValidateCopyParams), so a rebind must not patch
// the node into it; the repair recaptures instead, and the capture reports
// the kernel's refusal. Nothing is launched.
TEST_P(CapturedGraphTest, RebindNeverLaunchesParametersTheKernelRefuses) {
  TwoSlots owner(allocator());
  GraphOptions options;
  options.policy = ReplayPolicy::kRebind;
  auto graph = CaptureCopy(owner, options);
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_TRUE((*graph)->Replay().ok());
  Tensor arena =
      FromFloats({12}, DType::kF32, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  owner.src.Rebind(*arena.Narrow(0, 0, 8));
  owner.dst.Rebind(*arena.Narrow(0, 4, 8));
  EXPECT_FALSE(Copy(stream(), owner.src.tensor(), owner.dst.tensor()).ok());
  absl::Status s = (*graph)->Replay();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("overlap"));
  EXPECT_EQ((*graph)->stats().rebinds, 0);
  ASSERT_TRUE(stream().Synchronize().ok());
  EXPECT_THAT(ToFloats(arena),
              ::testing::ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
  // Moved apart again, the graph repairs and replays.
  owner.dst.Rebind(*Tensor::Empty(allocator(), {8}, DType::kF32));
  ASSERT_TRUE((*graph)->Replay().ok());
  ASSERT_TRUE(stream().Synchronize().ok());
  EXPECT_THAT(ToFloats(owner.dst.tensor()),
              ::testing::ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
}

// Host memory that says it lives on another device: what a tensor moved to
// another GPU (or offloaded) looks like to the graph.
class ElsewhereAllocator : public Allocator {
 public:
  Device device() const override { return Device::Cuda(7); }
  absl::StatusOr<void*> AllocateRaw(size_t bytes) override {
    return std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  }
  void FreeRaw(void* ptr, size_t) override { std::free(ptr); }
};

// A node may only be pointed at memory of its graph's device: a slot rebound
// to a tensor elsewhere is not rebound (whatever its layout) but recaptured,
// and the recapture refuses it, naming both devices. Nothing is launched.
TEST_P(CapturedGraphTest, TensorOnAnotherDeviceIsNeverRebound) {
  TwoSlots owner(allocator());
  ASSERT_TRUE(Fill(owner.src.tensor(), 3.0f).ok());
  GraphOptions options;
  options.policy = ReplayPolicy::kRebind;
  auto graph = *CaptureCopy(owner, options);
  ElsewhereAllocator elsewhere;
  Tensor away = *Tensor::Empty(elsewhere, {8}, DType::kF32);
  EXPECT_FALSE(away.Identity().SameLayout(owner.src.tensor().Identity()));
  EXPECT_THAT(away.Identity().ToString(), HasSubstr(" on cuda:7"));
  const Tensor before = owner.src.tensor();
  owner.src.Rebind(away);
  ASSERT_TRUE(Poison(owner.dst.tensor()).ok());
  absl::Status s = graph->Replay();
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("graph 'copy'"));
  EXPECT_THAT(s.message(), HasSubstr("is on cuda:7"));
  EXPECT_EQ(graph->stats().rebinds, 0);
  EXPECT_EQ(graph->stats().replays, 0);
  ASSERT_TRUE(stream().Synchronize().ok());
  EXPECT_THAT(ToFloats(owner.dst.tensor()), Each(::testing::IsNan()));
  // Back on the graph's device, the graph replays as captured.
  owner.src.Rebind(before);
  ASSERT_TRUE(graph->Replay().ok());
  EXPECT_THAT(ToFloats(owner.dst.tensor()), Each(3.0f));
}

// Graphs do not nest: replaying one while its stream captures another is
// refused (on the CPU it would run now and leave nothing in the capture).
TEST_P(CapturedGraphTest, ReplayWhileCapturingIsRefused) {
  TwoSlots owner(allocator());
  auto inner = *CaptureCopy(owner, GraphOptions(), {}, "inner");
  auto outer = CapturedGraph::Capture(
      "outer", stream(), [&](Stream&) { return inner->Replay(); }, {&owner});
  ASSERT_FALSE(outer.ok());
  EXPECT_THAT(outer.status().message(), HasSubstr("graph 'inner'"));
  EXPECT_THAT(outer.status().message(),
              HasSubstr("replay while its stream is capturing"));
  EXPECT_FALSE(stream().is_capturing());
  EXPECT_EQ(inner->stats().replays, 0);
  EXPECT_TRUE(inner->Replay().ok());
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
  // Step tensors of the same shapes in another order (or under other names)
  // would be copied into the wrong inputs: refused before any copy, naming
  // both.
  std::vector<StepTensorSpec> swapped = step.specs(3);
  std::swap(swapped[0], swapped[1]);
  auto wrong = *StepBuffers::Create("io", swapped, allocator());
  absl::Status s = (*graphs)->Run(*wrong);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("graph 'copy/b4'"));
  EXPECT_THAT(s.message(), HasSubstr("step tensor 0 is 'out'"));
  EXPECT_THAT(s.message(), HasSubstr("captured with 'in'"));
  EXPECT_EQ((*graphs)->TotalStats().replays, 1);
  EXPECT_FALSE(
      BucketedGraphs::Create("x", stream(), step, {0, 2}, {}, allocator())
          .ok());
  EXPECT_FALSE(
      BucketedGraphs::Create("x", stream(), step, {2, 2}, {}, allocator())
          .ok());
}

// A step tensor of another dtype or row shape than captured is refused
// before anything happens: no static input written (the ones before it
// included), no check, repair or replay counted.
TEST_P(BucketedGraphsTest, AWronglyTypedStepTensorIsRefusedBeforeAnyCopy) {
  StepFunction step;
  step.specs = [](int64_t batch) {
    return std::vector<StepTensorSpec>{
        {"a", {batch, 3}, DType::kF32, StepRole::kInput},
        {"b", {batch, 3}, DType::kF32, StepRole::kInput},
        {"out", {batch, 3}, DType::kF32, StepRole::kOutput}};
  };
  step.forward = [](Stream& s, const StepBuffers& b) {
    return Copy(s, b.tensor(1), b.tensor(2));
  };
  auto graphs =
      BucketedGraphs::Create("copy", stream(), step, {2}, {}, allocator());
  ASSERT_TRUE(graphs.ok()) << graphs.status();
  StepBuffers& statics = (*graphs)->static_buffers(2);
  const Tensor poison = *Tensor::Empty(allocator(), {2, 3}, DType::kF32);
  ASSERT_TRUE(Poison(poison).ok());
  for (const auto& [b, shape, dtype] :
       std::vector<std::tuple<std::string, Shape, DType>>{
           {"b", {2, 3}, DType::kBF16},
           {"b", {2, 4}, DType::kF32},
           {"b", {2, 3, 1}, DType::kF32}}) {
    std::vector<StepTensorSpec> specs = step.specs(2);
    for (StepTensorSpec& spec : specs) {
      if (spec.name == b) {
        spec.shape = shape;
        spec.dtype = dtype;
      }
    }
    auto io = *StepBuffers::Create("io", specs, allocator());
    for (size_t i = 0; i < statics.size(); ++i) {
      ASSERT_TRUE(Poison(statics.tensor(i)).ok());
    }
    ASSERT_TRUE(Fill(io->tensor(0), 1.0f).ok());
    ASSERT_TRUE(Fill(io->tensor(1), 2.0f).ok());
    const GraphStats before = (*graphs)->TotalStats();
    absl::Status s = (*graphs)->Run(*io);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("step tensor '", b, "'")));
    for (size_t i = 0; i < statics.size(); ++i) {
      EXPECT_TRUE(BitwiseEqual(statics.tensor(i), poison))
          << statics.spec(i).name;
    }
    const GraphStats after = (*graphs)->TotalStats();
    EXPECT_EQ(after.checks, before.checks);
    EXPECT_EQ(after.replays, before.replays);
  }
}

NG_INSTANTIATE_BACKEND_TEST(BucketedGraphsTest);

}  // namespace
}  // namespace normgraph
