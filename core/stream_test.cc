#include "core/stream.h"

#include <cstddef>
#include <cstring>

#include "core/tensor.h"
#include "core/tensor_util.h"
#include "core/testing/add_kernel.h"
#include "core/testing/backends.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace normgraph {
namespace {

using ::testing::HasSubstr;

// The launcher's contract on every backend (core/testing/backends.h), with a
// tiny test kernel that has a CPU and a CUDA implementation.
class StreamTest : public BackendTest {
 protected:
  absl::Status LaunchAdd(const Tensor& src, const Tensor& dst, float add) {
    AddParams p{src.data_as<const float>(), dst.data_as<float>(), src.numel(),
                add};
    return stream().Launch(
        AddKernel(), p,
        {{&p.src, &src, Access::kRead}, {&p.dst, &dst, Access::kWrite}});
  }
  Tensor Make(float value) {
    Tensor t = Empty({8}, DType::kF32);
    EXPECT_TRUE(Fill(t, value).ok());
    return t;
  }
  // Element i, read back from the device.
  float At(const Tensor& t, int i) { return ToFloats(t).at(i); }
};

TEST_P(StreamTest, EagerLaunchRunsAndBumpsWriteVersions) {
  Tensor src = Make(1.0f), dst = Make(0.0f);
  const uint64_t src_v = src.storage()->write_version(),
                 dst_v = dst.storage()->write_version();
  ASSERT_TRUE(LaunchAdd(src, dst, 2.0f).ok());
  EXPECT_EQ(At(dst, 7), 3.0f);
  EXPECT_EQ(src.storage()->write_version(), src_v);
  EXPECT_EQ(dst.storage()->write_version(), dst_v + 1);
  EXPECT_EQ(stream().eager_launches(), 1);
}

TEST_P(StreamTest, CaptureRecordsWithoutRunningAndReplayRuns) {
  Tensor src = Make(1.0f), dst = Make(0.0f);
  ASSERT_TRUE(stream().BeginCapture().ok());
  ASSERT_TRUE(LaunchAdd(src, dst, 5.0f).ok());
  absl::StatusOr<std::unique_ptr<ExecutableGraph>> graph =
      stream().EndCapture();
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(At(dst, 0), 0.0f) << "capture must not run the kernel";
  ASSERT_EQ((*graph)->nodes().size(), 1u);
  const LaunchRecord& node = (*graph)->nodes()[0];
  ASSERT_EQ(node.args.size(), 2u);
  EXPECT_EQ(node.args[0].identity, src.Identity());
  EXPECT_EQ(node.args[1].identity, dst.Identity());
  EXPECT_EQ(node.args[1].access, Access::kWrite);

  ASSERT_TRUE((*graph)->Replay().ok());
  EXPECT_EQ(At(dst, 0), 6.0f);
  ASSERT_TRUE(Fill(src, 10.0f).ok());  // in place: the graph sees it
  ASSERT_TRUE((*graph)->Replay().ok());
  EXPECT_EQ(At(dst, 0), 15.0f);
}

// The bug class in miniature: a handle rebound after capture leaves the graph
// reading the old memory, exactly as a CUDA graph would.
TEST_P(StreamTest, ReplayAfterRebindingAHandleReadsTheOldMemory) {
  Tensor src = Make(1.0f), dst = Make(0.0f);
  ASSERT_TRUE(stream().BeginCapture().ok());
  ASSERT_TRUE(LaunchAdd(src, dst, 0.0f).ok());
  auto graph = *stream().EndCapture();
  Tensor old = src;
  src = Make(42.0f);  // "self.weight = new_tensor"
  ASSERT_TRUE(graph->Replay().ok());
  EXPECT_EQ(At(dst, 0), 1.0f) << "the graph still reads the old storage";

  // RebindArg re-points the node at the new storage.
  ASSERT_TRUE(graph->RebindArg(0, 0, src).ok());
  EXPECT_EQ(graph->nodes()[0].args[0].identity, src.Identity());
  ASSERT_TRUE(graph->Replay().ok());
  EXPECT_EQ(At(dst, 0), 42.0f);
  const auto read = graph->ReadBackPointerFields();
  ASSERT_TRUE(read.ok()) << read.status();
  const auto& fields = *read;
  ASSERT_EQ(fields.size(), 1u);
  EXPECT_EQ(fields[0][0], reinterpret_cast<uintptr_t>(src.data()));
  EXPECT_EQ(fields[0][1], reinterpret_cast<uintptr_t>(dst.data()));

  Tensor wrong_shape = Empty({4}, DType::kF32);
  absl::Status s = graph->RebindArg(0, 0, wrong_shape);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("does not match recorded layout"));
  EXPECT_FALSE(graph->RebindArg(3, 0, src).ok());
}

TEST_P(StreamTest, EveryNonNullPointerMustBeBoundToItsTensor) {
  Tensor src = Make(1.0f), dst = Make(0.0f), other = Make(0.0f);
  AddParams p{src.data_as<const float>(), dst.data_as<float>(), 8, 0.0f};

  absl::Status unowned =
      stream().Launch(AddKernel(), p, {{&p.src, &src, Access::kRead}});
  EXPECT_THAT(unowned.message(), HasSubstr("an address no tensor owns"));

  absl::Status mismatch = stream().Launch(
      AddKernel(), p,
      {{&p.src, &src, Access::kRead}, {&p.dst, &other, Access::kWrite}});
  EXPECT_THAT(mismatch.message(), HasSubstr("but is bound to"));

  absl::Status twice = stream().Launch(
      AddKernel(), p,
      {{&p.src, &src, Access::kRead}, {&p.src, &src, Access::kRead}});
  EXPECT_THAT(twice.message(), HasSubstr("bound twice"));

  absl::Status not_pointer = stream().Launch(AddKernel(), p,
                                             {{&p.src, &src, Access::kRead},
                                              {&p.dst, &dst, Access::kWrite},
                                              {&p.n, &src, Access::kRead}});
  EXPECT_THAT(not_pointer.message(), HasSubstr("not a pointer field"));

  AddParams bad = p;
  bad.n = -1;
  absl::Status invalid = stream().Launch(
      AddKernel(), bad,
      {{&bad.src, &src, Access::kRead}, {&bad.dst, &dst, Access::kWrite}});
  EXPECT_THAT(invalid.message(), HasSubstr("kernel add: negative n"));
  EXPECT_EQ(stream().eager_launches(), 0);
}

TEST_P(StreamTest, AFailedLaunchInvalidatesTheCapture) {
  Tensor src = Make(1.0f), dst = Make(0.0f);
  ASSERT_TRUE(stream().BeginCapture().ok());
  EXPECT_FALSE(stream().BeginCapture().ok()) << "captures do not nest";
  AddParams p{src.data_as<const float>(), dst.data_as<float>(), 8, 0.0f};
  EXPECT_FALSE(
      stream().Launch(AddKernel(), p, {{&p.src, &src, Access::kRead}}).ok());
  ASSERT_TRUE(LaunchAdd(src, dst, 1.0f).ok());
  absl::Status s = stream().EndCapture().status();
  EXPECT_THAT(s.message(), HasSubstr("capture invalidated"));
  EXPECT_FALSE(stream().is_capturing());
  EXPECT_FALSE(stream().EndCapture().ok());
  // The stream is usable again.
  ASSERT_TRUE(stream().BeginCapture().ok());
  ASSERT_TRUE(LaunchAdd(src, dst, 1.0f).ok());
  EXPECT_TRUE(stream().EndCapture().ok());
}

NG_INSTANTIATE_BACKEND_TEST(StreamTest);

}  // namespace
}  // namespace normgraph
