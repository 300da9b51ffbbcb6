// The CUDA backend's own behaviour on a real GPU: stream capture into a CUDA
// graph, the stale read a rebound tensor causes, rebind through
// cudaGraphExecKernelNodeSetParams, the second inventory read back from the
// driver, refusal of work captured from outside the launcher, the caching
// allocator's address reuse, errors that name the CUDA call, and transfer
// batches (queued host <-> device copies).

#include "core/cuda/cuda_stream.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "core/cuda/cuda_allocator.h"
#include "core/runtime.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/kernels.h"

namespace normgraph {
namespace {

using ::testing::HasSubstr;

class CudaStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<DeviceRuntime*> runtime = GetRuntime(Device::Cuda(0));
    ASSERT_TRUE(runtime.ok()) << runtime.status();
    runtime_ = *runtime;
    auto stream = CudaStream::Create(0);
    ASSERT_TRUE(stream.ok()) << stream.status();
    stream_ = *std::move(stream);
  }

  Tensor Filled(float value, int64_t n = 1024) {
    Tensor t = *Tensor::Empty(runtime_->allocator(), {n}, DType::kF32);
    EXPECT_TRUE(Fill(t, value).ok());
    return t;
  }

  absl::Status Copy(const Tensor& src, const Tensor& dst) {
    CopyParams p{src.data(), dst.data(), src.numel() * 4};
    return stream_->Launch(
        CopyKernel(), p,
        {{&p.src, &src, Access::kRead}, {&p.dst, &dst, Access::kWrite}});
  }

  float First(const Tensor& t) { return ToFloats(t).at(0); }

  DeviceRuntime* runtime_ = nullptr;
  std::unique_ptr<CudaStream> stream_;
};

TEST_F(CudaStreamTest, RuntimeDescribesTheDevice) {
  EXPECT_THAT(runtime_->Describe(), HasSubstr("cuda:0"));
  EXPECT_EQ(runtime_->device(), Device::Cuda(0));
  std::printf("%s\n", runtime_->Describe().c_str());
}

TEST_F(CudaStreamTest, EagerLaunchRunsOnTheDevice) {
  Tensor src = Filled(3.5f), dst = Filled(0.0f);
  ASSERT_TRUE(Copy(src, dst).ok());
  EXPECT_TRUE(BitwiseEqual(src, dst));
  EXPECT_EQ(stream_->eager_launches(), 1);
}

TEST_F(CudaStreamTest, CaptureRecordsOneGraphNodePerLaunchAndReplays) {
  Tensor a = Filled(1.0f), b = Filled(0.0f), c = Filled(0.0f);
  ASSERT_TRUE(stream_->BeginCapture().ok());
  ASSERT_TRUE(Copy(a, b).ok());
  ASSERT_TRUE(Copy(b, c).ok());
  auto graph = stream_->EndCapture();
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ((*graph)->nodes().size(), 2u);
  // Capture ran nothing.
  EXPECT_EQ(First(c), 0.0f);
  ASSERT_TRUE((*graph)->Replay().ok());
  EXPECT_EQ(First(c), 1.0f);
  // The second inventory: the driver's nodes hold what the launcher recorded.
  auto fields = (*graph)->ReadBackPointerFields();
  ASSERT_TRUE(fields.ok()) << fields.status();
  ASSERT_EQ(fields->size(), 2u);
  EXPECT_EQ((*fields)[0][0], reinterpret_cast<uintptr_t>(a.data()));
  EXPECT_EQ((*fields)[0][1], reinterpret_cast<uintptr_t>(b.data()));
  EXPECT_EQ((*fields)[1][0], reinterpret_cast<uintptr_t>(b.data()));
  EXPECT_EQ((*fields)[1][1], reinterpret_cast<uintptr_t>(c.data()));
}

// The bug class itself, on real hardware: a handle rebound after capture
// leaves the graph reading the old device memory; RebindArg repairs it through
// cudaGraphExecKernelNodeSetParams, and the template graph reads back the new
// pointer.
TEST_F(CudaStreamTest, ReboundHandleIsReadStaleUntilTheNodeIsRebound) {
  Tensor src = Filled(1.0f), dst = Filled(0.0f);
  ASSERT_TRUE(stream_->BeginCapture().ok());
  ASSERT_TRUE(Copy(src, dst).ok());
  auto graph = *stream_->EndCapture();
  Tensor old = src;  // keep the old storage alive, as the pre-fix loader did
  src = Filled(42.0f);
  ASSERT_TRUE(graph->Replay().ok());
  EXPECT_EQ(First(dst), 1.0f) << "the graph must still read the old storage";

  ASSERT_TRUE(graph->RebindArg(0, 0, src).ok());
  ASSERT_TRUE(graph->Replay().ok());
  EXPECT_EQ(First(dst), 42.0f);
  auto fields = graph->ReadBackPointerFields();
  ASSERT_TRUE(fields.ok()) << fields.status();
  EXPECT_EQ((*fields)[0][0], reinterpret_cast<uintptr_t>(src.data()));

  Tensor wrong = Filled(0.0f, 16);
  EXPECT_EQ(graph->RebindArg(0, 0, wrong).code(),
            absl::StatusCode::kFailedPrecondition);
}

// A decode-sized norm whose rows the plan splits over a thread-block cluster
// (kernels/cuda/kernels.cu; forced here, so that the test does not depend on
// the automatic choice): the cluster is part of the captured node, the
// replay gives the eager bits, and a rebind through
// cudaGraphExecKernelNodeSetParams (new params, the node's attributes kept)
// gives the eager bits of the new input.
TEST_F(CudaStreamTest, ClusterLaunchReplaysAndRebindsLikeEager) {
  SetRmsNormLayoutOverride(0, 0, 0, 4);
  struct Reset {
    ~Reset() { SetRmsNormLayoutOverride(0, 0); }
  } reset;
  constexpr int64_t kRows = 2, kCols = 4096;
  auto normal = [&](uint64_t seed, int64_t rows) {
    Tensor t =
        *Tensor::Empty(runtime_->allocator(), {rows, kCols}, DType::kBF16);
    EXPECT_TRUE(FillNormal(t, seed, 0.0f, 1.0f).ok());
    return t;
  };
  Tensor x = normal(1, kRows), weight = normal(2, 1);
  Tensor out = normal(3, kRows), expected = normal(4, kRows);
  auto params = [&](const Tensor& in, const Tensor& to) {
    RmsNormParams p;
    p.x = in.data();
    p.weight = weight.data();
    p.out = to.data();
    p.rows = kRows;
    p.cols = kCols;
    p.x_stride = p.out_stride = kCols;
    return p;
  };
  auto norm = [&](const Tensor& in, const Tensor& to) {
    RmsNormParams p = params(in, to);
    return stream_->Launch(RmsNormKernel(), p,
                           {{&p.x, &in, Access::kRead},
                            {&p.weight, &weight, Access::kRead},
                            {&p.out, &to, Access::kWrite}});
  };
  RmsNormParams planned = params(x, out);
  const absl::StatusOr<CudaLaunch> plan =
      PlanCudaLaunch(RmsNormKernel(), &planned);
  ASSERT_TRUE(plan.ok()) << plan.status();
  int major = 0;
  ASSERT_EQ(
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0),
      cudaSuccess);
  if (major >= 9) {
    EXPECT_EQ(plan->cluster, 4u);
  }

  ASSERT_TRUE(norm(x, expected).ok());
  ASSERT_TRUE(stream_->BeginCapture().ok());
  ASSERT_TRUE(norm(x, out).ok());
  auto graph = *stream_->EndCapture();
  ASSERT_TRUE(graph->Replay().ok());
  ASSERT_TRUE(stream_->Synchronize().ok());
  EXPECT_TRUE(BitwiseEqual(out, expected));

  Tensor other = normal(5, kRows);
  ASSERT_TRUE(norm(other, expected).ok());
  ASSERT_TRUE(stream_->Synchronize().ok());
  ASSERT_FALSE(BitwiseEqual(out, expected)) << "the inputs must differ";
  ASSERT_TRUE(graph->RebindArg(0, 0, other).ok());
  ASSERT_TRUE(graph->Replay().ok());
  ASSERT_TRUE(stream_->Synchronize().ok());
  EXPECT_TRUE(BitwiseEqual(out, expected));
}

// Work captured from outside the launcher cannot be checked by name: the
// capture is refused, naming the node.
TEST_F(CudaStreamTest, KernelCapturedOutsideTheLauncherIsACaptureError) {
  Tensor src = Filled(1.0f), dst = Filled(0.0f);
  ASSERT_TRUE(stream_->BeginCapture().ok());
  ASSERT_TRUE(Copy(src, dst).ok());
  // A kernel launched straight onto the capturing stream.
  CopyParams p{src.data(), dst.data(), 64};
  auto plan = PlanCudaLaunch(CopyKernel(), &p);
  ASSERT_TRUE(plan.ok());
  void* args[] = {&p};
  ASSERT_EQ(cudaLaunchKernel(plan->function, dim3(1), dim3(32), args, 0,
                             stream_->raw()),
            cudaSuccess);
  auto graph = stream_->EndCapture();
  ASSERT_FALSE(graph.ok());
  EXPECT_EQ(graph.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(graph.status().message(), HasSubstr("did not record"));
  EXPECT_THAT(graph.status().message(), HasSubstr("CopyKernel"));
  // The stream is usable again.
  ASSERT_TRUE(stream_->BeginCapture().ok());
  ASSERT_TRUE(Copy(src, dst).ok());
  EXPECT_TRUE(stream_->EndCapture().ok());
}

TEST_F(CudaStreamTest, MemsetCapturedOutsideTheLauncherIsACaptureError) {
  Tensor dst = Filled(0.0f);
  ASSERT_TRUE(stream_->BeginCapture().ok());
  ASSERT_EQ(cudaMemsetAsync(dst.data(), 0, 64, stream_->raw()), cudaSuccess);
  auto graph = stream_->EndCapture();
  ASSERT_FALSE(graph.ok());
  EXPECT_THAT(graph.status().message(), HasSubstr("memset node"));
}

// A launch that fails while capturing invalidates the capture (as CUDA does),
// and the error says which kernel.
TEST_F(CudaStreamTest, FailedLaunchInvalidatesTheCapture) {
  static const KernelDef* cpu_only = [] {
    auto* d = new KernelDef(CopyKernel());
    d->name = "cpu_only_copy";
    d->cuda_plan = nullptr;
    return d;
  }();
  Tensor src = Filled(1.0f), dst = Filled(0.0f);
  ASSERT_TRUE(stream_->BeginCapture().ok());
  CopyParams p{src.data(), dst.data(), 16};
  EXPECT_FALSE(stream_
                   ->Launch(*cpu_only, p,
                            {{&p.src, &src, Access::kRead},
                             {&p.dst, &dst, Access::kWrite}})
                   .ok());
  auto graph = stream_->EndCapture();
  ASSERT_FALSE(graph.ok());
  EXPECT_THAT(graph.status().message(), HasSubstr("cpu_only_copy"));
  EXPECT_THAT(graph.status().message(), HasSubstr("no CUDA implementation"));
}

// Tests that provoke a failing CUDA API call on purpose. compute-sanitizer
// reports every failing API call as an error, so sanitizer runs leave this
// suite out (SANITIZE_GTEST_FILTER=...:-CudaApiErrorTest.*).
class CudaApiErrorTest : public CudaStreamTest {};

// Host copies are not capturable: asking for one while capturing is an error,
// not a hang or a silently broken graph.
TEST_F(CudaApiErrorTest, HostCopyWhileCapturingIsRefused) {
  Tensor t = Filled(0.0f);
  ASSERT_TRUE(stream_->BeginCapture().ok());
  EXPECT_FALSE(Fill(t, 1.0f).ok());
  EXPECT_FALSE(stream_->EndCapture().ok());
  // Afterwards everything works again.
  EXPECT_TRUE(Fill(t, 2.0f).ok());
  EXPECT_EQ(First(t), 2.0f);
}

// The caching allocator hands a freed block of the same size out again at the
// same address, to a storage with a new id: the ABA case storage ids exist for.
TEST_F(CudaStreamTest, FreedBlockComesBackAtTheSameAddressWithANewId) {
  auto first = Storage::Allocate(runtime_->allocator(), 4096);
  ASSERT_TRUE(first.ok());
  void* address = (*first)->data();
  const uint64_t id = (*first)->id();
  first->reset();
  auto second = Storage::Allocate(runtime_->allocator(), 4096);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->data(), address);
  EXPECT_NE((*second)->id(), id);
  EXPECT_FALSE(StorageIsLive(id));
}

TEST_F(CudaApiErrorTest, OutOfMemoryNamesTheCallAndTheSize) {
  auto huge = Storage::Allocate(runtime_->allocator(), size_t{1} << 50);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(huge.status().message(), HasSubstr("cudaMalloc"));
  EXPECT_THAT(huge.status().message(), HasSubstr("1125899906842624 B"));
  // Nothing sticky: the device still works.
  Tensor src = Filled(5.0f), dst = Filled(0.0f);
  ASSERT_TRUE(Copy(src, dst).ok());
  EXPECT_EQ(First(dst), 5.0f);
}

// Every backend call on cuda:0 (allocation, copies, launches, capture,
// replay) runs on cuda:0 and leaves the calling thread's current device as it
// found it, however the thread switches devices in between. Needs two GPUs.
TEST_F(CudaStreamTest, CallsOnOneDeviceLeaveTheThreadsDeviceAlone) {
  int count = 0;
  ASSERT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
  if (count < 2) GTEST_SKIP() << "one CUDA device: nothing to switch to";
  absl::StatusOr<DeviceRuntime*> other = GetRuntime(Device::Cuda(1));
  ASSERT_TRUE(other.ok()) << other.status();
  struct Back {
    ~Back() { cudaSetDevice(0); }
  } back;
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  auto current = [] {
    int d = -1;
    EXPECT_EQ(cudaGetDevice(&d), cudaSuccess);
    return d;
  };
  Tensor elsewhere = *Tensor::Empty((*other)->allocator(), {1024}, DType::kF32);
  Tensor a = Filled(2.0f), b = Filled(0.0f);
  EXPECT_EQ(current(), 1);
  cudaPointerAttributes attributes;
  ASSERT_EQ(cudaPointerGetAttributes(&attributes, a.data()), cudaSuccess);
  EXPECT_EQ(attributes.device, 0);
  ASSERT_EQ(cudaPointerGetAttributes(&attributes, elsewhere.data()),
            cudaSuccess);
  EXPECT_EQ(attributes.device, 1);
  ASSERT_TRUE(Copy(a, b).ok());
  EXPECT_EQ(current(), 1);
  EXPECT_EQ(First(b), 2.0f);
  ASSERT_TRUE(stream_->BeginCapture().ok());
  ASSERT_TRUE(Copy(b, a).ok());
  auto graph = stream_->EndCapture();
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_TRUE(Fill(b, 7.0f).ok());
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  ASSERT_TRUE((*graph)->Replay().ok());
  ASSERT_TRUE(stream_->Synchronize().ok());
  EXPECT_EQ(current(), 1);
  EXPECT_EQ(First(a), 7.0f);
  EXPECT_EQ(current(), 1);
}

TEST_F(CudaStreamTest, HostRoundTripThroughPinnedStagingIsExact) {
  for (int64_t n : {1, 7, 1000, 3 << 20, 40 << 20}) {
    std::vector<uint16_t> host(n);
    for (int64_t i = 0; i < n; ++i)
      host[i] = static_cast<uint16_t>(i * 2654435761u);
    Tensor t = *Tensor::Empty(runtime_->allocator(), {n}, DType::kBF16);
    ASSERT_TRUE(CopyInto(HostView{host.data(), DType::kBF16, {n}}, t).ok());
    Tensor back = *ToHost(t);
    EXPECT_EQ(std::memcmp(back.data(), host.data(), n * 2), 0) << n;
  }
}

// Transfer batches (DeviceRuntime::BeginTransfers): queued copies, reads
// answered from the staged bytes, and everything on the device by the end.
class TransferBatchTest : public CudaStreamTest {
 protected:
  std::vector<float> Read(const Tensor& t) {
    std::vector<float> out(t.numel());
    EXPECT_TRUE(
        runtime_->CopyToHost(out.data(), t.data(), out.size() * 4).ok());
    return out;
  }
  absl::Status Write(const Tensor& t, const std::vector<float>& values,
                     int64_t first = 0) {
    return runtime_->CopyFromHost(static_cast<float*>(t.data()) + first,
                                  values.data(), values.size() * 4);
  }
};

TEST_F(TransferBatchTest, ReadsBackWhatItWroteAndLandsByItsEnd) {
  Tensor t = Filled(1.0f);
  ASSERT_TRUE(runtime_->BeginTransfers().ok());
  std::vector<float> twos(1024, 2.0f);
  ASSERT_TRUE(Write(t, twos).ok());
  twos.assign(1024, -7.0f);  // the caller's buffer is free once Write returns
  EXPECT_EQ(Read(t), std::vector<float>(1024, 2.0f));
  // The second half overwritten: the whole range then mixes two copies and is
  // read from the device behind them; each half alone is staged.
  ASSERT_TRUE(Write(t, std::vector<float>(512, 3.0f), 512).ok());
  std::vector<float> expected(1024, 2.0f);
  std::fill(expected.begin() + 512, expected.end(), 3.0f);
  EXPECT_EQ(Read(t), expected);
  std::vector<float> half(512);
  ASSERT_TRUE(
      runtime_
          ->CopyToHost(half.data(), static_cast<float*>(t.data()) + 512, 2048)
          .ok());
  EXPECT_EQ(half, std::vector<float>(512, 3.0f));
  ASSERT_TRUE(runtime_->EndTransfers().ok());
  // On the device for a kernel after the batch.
  Tensor copy = Filled(0.0f);
  ASSERT_TRUE(Copy(t, copy).ok());
  EXPECT_EQ(ToFloats(copy), expected);
}

TEST_F(TransferBatchTest, StartsAfterQueuedKernelsAndPrefetchedReadsSeeThem) {
  Tensor a = Filled(5.0f), b = Filled(0.0f), c = Filled(6.0f);
  ASSERT_TRUE(Copy(a, b).ok());  // queued, maybe still running
  ASSERT_TRUE(runtime_->BeginTransfers().ok());
  ASSERT_TRUE(runtime_->PrefetchToHost(b.data(), 4096).ok());
  ASSERT_TRUE(runtime_->PrefetchToHost(c.data(), 4096).ok());
  // A write after the prefetch of c: the newer copy answers.
  ASSERT_TRUE(Write(c, std::vector<float>(1024, 8.0f)).ok());
  EXPECT_EQ(Read(b), std::vector<float>(1024, 5.0f));
  EXPECT_EQ(Read(c), std::vector<float>(1024, 8.0f));
  ASSERT_TRUE(runtime_->EndTransfers().ok());
  EXPECT_EQ(ToFloats(c), std::vector<float>(1024, 8.0f));
}

TEST_F(TransferBatchTest, BelongsToTheThreadThatBeganIt) {
  Tensor t = Filled(1.0f);
  ASSERT_TRUE(runtime_->BeginTransfers().ok());
  ASSERT_TRUE(Write(t, std::vector<float>(1024, 2.0f)).ok());
  std::atomic<bool> done{false};
  std::vector<float> seen;
  // Another thread's read waits for the batch to end (it does not join it).
  std::thread other([&] {
    seen = Read(t);
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(done.load());
  ASSERT_TRUE(runtime_->EndTransfers().ok());
  other.join();
  EXPECT_TRUE(done.load());
  EXPECT_EQ(seen, std::vector<float>(1024, 2.0f));
}

TEST_F(TransferBatchTest, OutgrowsItsArenaAndNests) {
  // 48 tensors of 64 KiB: more than the first arena (1 MiB) holds, so the
  // batch waits for its copies and starts the arena over on the way; one
  // write larger than the arena grows it.
  std::vector<Tensor> tensors;
  ASSERT_TRUE(runtime_->BeginTransfers().ok());
  ASSERT_TRUE(runtime_->BeginTransfers().ok());  // nested: one batch
  for (int i = 0; i < 48; ++i) {
    tensors.push_back(Filled(0.0f, 16384));
    ASSERT_TRUE(Write(tensors.back(), std::vector<float>(16384, i)).ok());
  }
  Tensor big = Filled(0.0f, 1 << 20);  // 4 MiB
  ASSERT_TRUE(Write(big, std::vector<float>(1 << 20, -1.0f)).ok());
  for (int i = 0; i < 48; ++i) {
    EXPECT_EQ(Read(tensors[i]), std::vector<float>(16384, i)) << i;
  }
  ASSERT_TRUE(runtime_->EndTransfers().ok());  // the inner end: still open
  ASSERT_TRUE(Write(tensors[0], std::vector<float>(16384, 100.0f)).ok());
  ASSERT_TRUE(runtime_->EndTransfers().ok());
  for (int i = 0; i < 48; ++i) {
    EXPECT_EQ(ToFloats(tensors[i]), std::vector<float>(16384, i ? i : 100))
        << i;
  }
  EXPECT_EQ(ToFloats(big), std::vector<float>(1 << 20, -1.0f));
  // Unbalanced: an error, not a silent batch.
  absl::Status unbalanced = runtime_->EndTransfers();
  EXPECT_EQ(unbalanced.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(unbalanced.message(), HasSubstr("without BeginTransfers"));
}

}  // namespace
}  // namespace normgraph
