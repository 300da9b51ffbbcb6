// Toolchain smoke test (GPU host only): nvcc-built kernel, cudart linked
// statically, a launch with one POD struct parameter, and the same launch
// captured into a CUDA graph, replayed, and read back.
#include "tools/cuda/cuda_smoke_test.h"

#include <cuda_runtime.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace normgraph::cuda_smoke {
namespace {

#define CUDA_ASSERT(expr)                                                   \
  do {                                                                      \
    const cudaError_t err_ = (expr);                                        \
    ASSERT_EQ(err_, cudaSuccess) << #expr << ": " << cudaGetErrorName(err_) \
                                 << " " << cudaGetErrorString(err_);        \
  } while (0)

constexpr int kN = 1000;  // not a multiple of the block size
constexpr float kA = 3.0f;

class CudaSmokeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int devices = 0;
    CUDA_ASSERT(cudaGetDeviceCount(&devices));
    ASSERT_GT(devices, 0);
    // Exactly representable inputs and results, so the checks can be exact (no
    // zeros).
    for (int i = 0; i < kN; ++i) {
      x_[i] = 0.5f + 0.25f * i;
      y0_[i] = 1.0f - 0.125f * i;
    }
    CUDA_ASSERT(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_ASSERT(cudaMalloc(&x_dev_, kN * sizeof(float)));
    CUDA_ASSERT(cudaMalloc(&y_dev_, kN * sizeof(float)));
    CUDA_ASSERT(cudaMemcpy(x_dev_, x_.data(), kN * sizeof(float),
                           cudaMemcpyHostToDevice));
    CUDA_ASSERT(cudaMemcpy(y_dev_, y0_.data(), kN * sizeof(float),
                           cudaMemcpyHostToDevice));
  }

  void TearDown() override {
    if (exec_ != nullptr) {
      EXPECT_EQ(cudaGraphExecDestroy(exec_), cudaSuccess);
    }
    if (graph_ != nullptr) {
      EXPECT_EQ(cudaGraphDestroy(graph_), cudaSuccess);
    }
    if (x_dev_ != nullptr) {
      EXPECT_EQ(cudaFree(x_dev_), cudaSuccess);
    }
    if (y_dev_ != nullptr) {
      EXPECT_EQ(cudaFree(y_dev_), cudaSuccess);
    }
    if (stream_ != nullptr) {
      EXPECT_EQ(cudaStreamDestroy(stream_), cudaSuccess);
    }
  }

  // y after `times` applications of y = a * x + y.
  void ExpectY(int times) {
    std::vector<float> y(kN);
    ASSERT_EQ(cudaMemcpy(y.data(), y_dev_, kN * sizeof(float),
                         cudaMemcpyDeviceToHost),
              cudaSuccess);
    for (int i = 0; i < kN; ++i) {
      float expected = y0_[i];
      for (int t = 0; t < times; ++t) expected = kA * x_[i] + expected;
      ASSERT_EQ(y[i], expected) << "i=" << i;
    }
  }

  AxpyParams Params() const { return AxpyParams{x_dev_, y_dev_, kA, kN}; }

  std::vector<float> x_ = std::vector<float>(kN), y0_ = std::vector<float>(kN);
  float* x_dev_ = nullptr;
  float* y_dev_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

TEST_F(CudaSmokeTest, Launch) {
  CUDA_ASSERT(LaunchAxpy(Params(), stream_));
  CUDA_ASSERT(cudaStreamSynchronize(stream_));
  ExpectY(1);
}

TEST_F(CudaSmokeTest, CapturedGraphReplaysAndReadsBack) {
  CUDA_ASSERT(
      cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  const cudaError_t launched = LaunchAxpy(Params(), stream_);
  CUDA_ASSERT(cudaStreamEndCapture(stream_, &graph_));
  CUDA_ASSERT(launched);

  size_t count = 0;
  CUDA_ASSERT(cudaGraphGetNodes(graph_, nullptr, &count));
  ASSERT_EQ(count, 1u);
  cudaGraphNode_t node = nullptr;
  CUDA_ASSERT(cudaGraphGetNodes(graph_, &node, &count));
  cudaGraphNodeType type;
  CUDA_ASSERT(cudaGraphNodeGetType(node, &type));
  ASSERT_EQ(type, cudaGraphNodeTypeKernel);

  cudaKernelNodeParams kernel{};
  CUDA_ASSERT(cudaGraphKernelNodeGetParams(node, &kernel));
  EXPECT_EQ(kernel.func, AxpyKernel());
  EXPECT_EQ(kernel.blockDim.x, 256u);
  EXPECT_EQ(kernel.gridDim.x, static_cast<unsigned>((kN + 255) / 256));
  ASSERT_NE(kernel.kernelParams, nullptr);
  ASSERT_NE(kernel.kernelParams[0], nullptr);
  AxpyParams recorded;
  std::memcpy(&recorded, kernel.kernelParams[0], sizeof(recorded));
  EXPECT_EQ(recorded.x, x_dev_);
  EXPECT_EQ(recorded.y, y_dev_);
  EXPECT_EQ(recorded.a, kA);
  EXPECT_EQ(recorded.n, kN);

  // Capture does not execute: y is untouched until the graph is launched.
  ExpectY(0);
  CUDA_ASSERT(cudaGraphInstantiate(&exec_, graph_, 0));
  CUDA_ASSERT(cudaGraphLaunch(exec_, stream_));
  CUDA_ASSERT(cudaGraphLaunch(exec_, stream_));
  CUDA_ASSERT(cudaStreamSynchronize(stream_));
  ExpectY(2);
}

}  // namespace
}  // namespace normgraph::cuda_smoke
