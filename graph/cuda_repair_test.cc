// Repairs only the CUDA backend can need: a rebind the driver's graph cannot
// take (the launch would now be planned differently) becomes a recapture, and
// the graph never replays half patched.

#include <memory>

#include "core/runtime.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "graph/captured_graph.h"
#include "gtest/gtest.h"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/kernels.h"

namespace normgraph {
namespace {

// One decode-sized RMSNorm: x [1, 4096] bf16 -> out, weight [4096].
class OneNorm : public TensorOwner {
 public:
  explicit OneNorm(Allocator& allocator)
      : x(SlotKind::kBuffer, Normal(allocator, {1, 4096}, 1)),
        weight(SlotKind::kParameter, Normal(allocator, {4096}, 2)),
        out(SlotKind::kBuffer, Normal(allocator, {1, 4096}, 3)) {}
  void ForEachSlot(SlotVisitor visit) override {
    visit("norm.x", x);
    visit("norm.weight", weight);
    visit("norm.out", out);
  }
  static Tensor Normal(Allocator& allocator, Shape shape, uint64_t seed) {
    Tensor t = *Tensor::Empty(allocator, shape, DType::kBF16);
    EXPECT_TRUE(FillNormal(t, seed, 0.0f, 1.0f).ok());
    return t;
  }
  absl::Status Run(Stream& stream, const Tensor& to) const {
    const Tensor& in = x.tensor();
    const Tensor& w = weight.tensor();
    RmsNormParams p;
    p.x = in.data();
    p.weight = w.data();
    p.out = to.data();
    p.rows = 1;
    p.cols = 4096;
    p.x_stride = p.out_stride = 4096;
    return stream.Launch(RmsNormKernel(), p,
                         {{&p.x, &in, Access::kRead},
                          {&p.weight, &w, Access::kRead},
                          {&p.out, &to, Access::kWrite}});
  }
  TensorSlot x, weight, out;
};

TEST(CudaRepairTest, RebindTheGraphCannotTakeIsRepairedByARecapture) {
  DeviceRuntime* runtime = *GetRuntime(Device::Cuda(0));
  std::unique_ptr<Stream> stream = *runtime->NewStream();
  const bool pdl = ProgrammaticDependentLaunch();
  struct Reset {
    bool pdl;
    ~Reset() { SetProgrammaticDependentLaunch(pdl); }
  } reset{pdl};
  SetProgrammaticDependentLaunch(true);
  OneNorm norm(runtime->allocator());
  GraphOptions options;
  options.policy = ReplayPolicy::kRebind;
  auto graph = CapturedGraph::Capture(
      "norm", *stream,
      [&](Stream& s) { return norm.Run(s, norm.out.tensor()); }, {&norm},
      options);
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_TRUE((*graph)->graph().nodes().size() == 1u);

  // Plans made now differ from the captured one (no programmatic dependent
  // launch): the driver's node cannot be given the new pointer alone.
  SetProgrammaticDependentLaunch(false);
  norm.x.Rebind(OneNorm::Normal(runtime->allocator(), {1, 4096}, 4));
  Tensor expected = OneNorm::Normal(runtime->allocator(), {1, 4096}, 5);
  ASSERT_TRUE(norm.Run(*stream, expected).ok());
  ASSERT_TRUE(stream->Synchronize().ok());
  ASSERT_FALSE(BitwiseEqual(norm.out.tensor(), expected));

  absl::Status replayed = (*graph)->Replay();
  ASSERT_TRUE(replayed.ok()) << replayed;
  EXPECT_EQ((*graph)->stats().rebinds, 0);
  EXPECT_EQ((*graph)->stats().recaptures, 1);
  EXPECT_FALSE((*graph)->invalidated());
  ASSERT_TRUE(stream->Synchronize().ok());
  EXPECT_TRUE(BitwiseEqual(norm.out.tensor(), expected));
  EXPECT_TRUE(CrossCheckNodePointers((*graph)->graph()).ok());

  // With the capture's setting back, a move is a rebind again.
  SetProgrammaticDependentLaunch(true);
  ASSERT_TRUE((*graph)->Recapture().ok());
  norm.x.Rebind(OneNorm::Normal(runtime->allocator(), {1, 4096}, 6));
  ASSERT_TRUE(norm.Run(*stream, expected).ok());
  ASSERT_TRUE((*graph)->Replay().ok());
  EXPECT_EQ((*graph)->stats().rebinds, 1);
  ASSERT_TRUE(stream->Synchronize().ok());
  EXPECT_TRUE(BitwiseEqual(norm.out.tensor(), expected));
}

}  // namespace
}  // namespace normgraph
