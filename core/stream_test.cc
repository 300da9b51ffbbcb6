#include "core/stream.h"

#include <cstddef>
#include <cstring>

#include "core/cpu_stream.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace normgraph {
namespace {

using ::testing::HasSubstr;

// A test kernel: dst[i] = src[i] + add, over f32.
struct AddParams {
  const float* src;
  float* dst;
  int64_t n;
  float add;
};

void AddCpu(const AddParams& p) {
  for (int64_t i = 0; i < p.n; ++i) p.dst[i] = p.src[i] + p.add;
}

absl::Status ValidateAdd(const AddParams& p) {
  return p.n >= 0 ? absl::OkStatus() : absl::InvalidArgumentError("negative n");
}

const KernelDef& AddKernel() {
  static const KernelDef* def = [] {
    auto* d = new KernelDef;
    d->name = "add";
    d->params_size = sizeof(AddParams);
    d->pointer_offsets = {offsetof(AddParams, src), offsetof(AddParams, dst)};
    d->validate = ValidateEntry<AddParams, ValidateAdd>;
    d->cpu_entry = CpuEntry<AddParams, AddCpu>;
    return d;
  }();
  return *def;
}

class StreamTest : public ::testing::Test {
 protected:
  absl::Status LaunchAdd(const Tensor& src, const Tensor& dst, float add) {
    AddParams p{src.data_as<const float>(), dst.data_as<float>(), src.numel(),
                add};
    return stream_.Launch(
        AddKernel(), p,
        {{&p.src, &src, Access::kRead}, {&p.dst, &dst, Access::kWrite}});
  }
  Tensor Make(float value) {
    Tensor t = *Tensor::Empty(CpuAllocator(), {8}, DType::kF32);
    EXPECT_TRUE(Fill(t, value).ok());
    return t;
  }
  CpuStream stream_;
};

TEST_F(StreamTest, EagerLaunchRunsAndBumpsWriteVersions) {
  Tensor src = Make(1.0f), dst = Make(0.0f);
  const uint64_t src_v = src.storage()->write_version(),
                 dst_v = dst.storage()->write_version();
  ASSERT_TRUE(LaunchAdd(src, dst, 2.0f).ok());
  EXPECT_EQ(dst.data_as<float>()[7], 3.0f);
  EXPECT_EQ(src.storage()->write_version(), src_v);
  EXPECT_EQ(dst.storage()->write_version(), dst_v + 1);
  EXPECT_EQ(stream_.eager_launches(), 1);
}

TEST_F(StreamTest, CaptureRecordsWithoutRunningAndReplayRuns) {
  Tensor src = Make(1.0f), dst = Make(0.0f);
  ASSERT_TRUE(stream_.BeginCapture().ok());
  ASSERT_TRUE(LaunchAdd(src, dst, 5.0f).ok());
  absl::StatusOr<std::unique_ptr<ExecutableGraph>> graph = stream_.EndCapture();
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(dst.data_as<float>()[0], 0.0f) << "capture must not run the kernel";
  ASSERT_EQ((*graph)->nodes().size(), 1u);
  const LaunchRecord& node = (*graph)->nodes()[0];
  ASSERT_EQ(node.args.size(), 2u);
  EXPECT_EQ(node.args[0].identity, src.Identity());
  EXPECT_EQ(node.args[1].identity, dst.Identity());
  EXPECT_EQ(node.args[1].access, Access::kWrite);

  ASSERT_TRUE((*graph)->Replay().ok());
  EXPECT_EQ(dst.data_as<float>()[0], 6.0f);
  ASSERT_TRUE(Fill(src, 10.0f).ok());  // in place: the graph sees it
  ASSERT_TRUE((*graph)->Replay().ok());
  EXPECT_EQ(dst.data_as<float>()[0], 15.0f);
}

// The bug class in miniature: a handle rebound after capture leaves the graph
// reading the old memory, exactly as a CUDA graph would.
TEST_F(StreamTest, ReplayAfterRebindingAHandleReadsTheOldMemory) {
  Tensor src = Make(1.0f), dst = Make(0.0f);
  ASSERT_TRUE(stream_.BeginCapture().ok());
  ASSERT_TRUE(LaunchAdd(src, dst, 0.0f).ok());
  auto graph = *stream_.EndCapture();
  Tensor old = src;
  src = Make(42.0f);  // "self.weight = new_tensor"
  ASSERT_TRUE(graph->Replay().ok());
  EXPECT_EQ(dst.data_as<float>()[0], 1.0f)
      << "the graph still reads the old storage";

  // RebindArg re-points the node at the new storage.
  ASSERT_TRUE(graph->RebindArg(0, 0, src).ok());
  EXPECT_EQ(graph->nodes()[0].args[0].identity, src.Identity());
  ASSERT_TRUE(graph->Replay().ok());
  EXPECT_EQ(dst.data_as<float>()[0], 42.0f);
  const auto read = graph->ReadBackPointerFields();
  ASSERT_TRUE(read.ok()) << read.status();
  const auto& fields = *read;
  ASSERT_EQ(fields.size(), 1u);
  EXPECT_EQ(fields[0][0], reinterpret_cast<uintptr_t>(src.data()));
  EXPECT_EQ(fields[0][1], reinterpret_cast<uintptr_t>(dst.data()));

  Tensor wrong_shape = *Tensor::Empty(CpuAllocator(), {4}, DType::kF32);
  absl::Status s = graph->RebindArg(0, 0, wrong_shape);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("does not match recorded layout"));
  EXPECT_FALSE(graph->RebindArg(3, 0, src).ok());
}

TEST_F(StreamTest, EveryNonNullPointerMustBeBoundToItsTensor) {
  Tensor src = Make(1.0f), dst = Make(0.0f), other = Make(0.0f);
  AddParams p{src.data_as<const float>(), dst.data_as<float>(), 8, 0.0f};

  absl::Status unowned =
      stream_.Launch(AddKernel(), p, {{&p.src, &src, Access::kRead}});
  EXPECT_THAT(unowned.message(), HasSubstr("an address no tensor owns"));

  absl::Status mismatch = stream_.Launch(
      AddKernel(), p,
      {{&p.src, &src, Access::kRead}, {&p.dst, &other, Access::kWrite}});
  EXPECT_THAT(mismatch.message(), HasSubstr("but is bound to"));

  absl::Status twice = stream_.Launch(
      AddKernel(), p,
      {{&p.src, &src, Access::kRead}, {&p.src, &src, Access::kRead}});
  EXPECT_THAT(twice.message(), HasSubstr("bound twice"));

  absl::Status not_pointer = stream_.Launch(AddKernel(), p,
                                            {{&p.src, &src, Access::kRead},
                                             {&p.dst, &dst, Access::kWrite},
                                             {&p.n, &src, Access::kRead}});
  EXPECT_THAT(not_pointer.message(), HasSubstr("not a pointer field"));

  AddParams bad = p;
  bad.n = -1;
  absl::Status invalid = stream_.Launch(
      AddKernel(), bad,
      {{&bad.src, &src, Access::kRead}, {&bad.dst, &dst, Access::kWrite}});
  EXPECT_THAT(invalid.message(), HasSubstr("kernel add: negative n"));
  EXPECT_EQ(stream_.eager_launches(), 0);
}

TEST_F(StreamTest, AFailedLaunchInvalidatesTheCapture) {
  Tensor src = Make(1.0f), dst = Make(0.0f);
  ASSERT_TRUE(stream_.BeginCapture().ok());
  EXPECT_FALSE(stream_.BeginCapture().ok()) << "captures do not nest";
  AddParams p{src.data_as<const float>(), dst.data_as<float>(), 8, 0.0f};
  EXPECT_FALSE(
      stream_.Launch(AddKernel(), p, {{&p.src, &src, Access::kRead}}).ok());
  ASSERT_TRUE(LaunchAdd(src, dst, 1.0f).ok());
  absl::Status s = stream_.EndCapture().status();
  EXPECT_THAT(s.message(), HasSubstr("capture invalidated"));
  EXPECT_FALSE(stream_.is_capturing());
  EXPECT_FALSE(stream_.EndCapture().ok());
  // The stream is usable again.
  ASSERT_TRUE(stream_.BeginCapture().ok());
  ASSERT_TRUE(LaunchAdd(src, dst, 1.0f).ok());
  EXPECT_TRUE(stream_.EndCapture().ok());
}

}  // namespace
}  // namespace normgraph
