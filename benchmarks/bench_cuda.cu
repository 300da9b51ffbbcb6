#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "benchmarks/bench_cuda.h"
#include "core/float_bits.h"

namespace normgraph::bench {
namespace {

__device__ __forceinline__ uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Box-Muller on two hashed uniforms.
__device__ __forceinline__ float Normal(uint64_t i, uint64_t seed) {
  const uint64_t h = Mix(i * 0x9E3779B97F4A7C15ull + seed);
  const float u1 = (static_cast<float>(h >> 40) + 1.0f) * (1.0f / 16777217.0f);
  const float u2 =
      static_cast<float>((h >> 16) & 0xFFFFFFu) * (1.0f / 16777216.0f);
  return sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
}

__global__ void FillKernel(void* data, int64_t n, int dtype, uint64_t seed,
                           float mean, float stddev) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = mean + stddev * Normal(static_cast<uint64_t>(i), seed);
    if (v == 0.0f) v = 1e-3f;  // never zeros
    if (dtype == static_cast<int>(DType::kF32)) {
      static_cast<float*>(data)[i] = v;
    } else if (dtype == static_cast<int>(DType::kBF16)) {
      static_cast<uint16_t*>(data)[i] = FloatToBf16Bits(v);
    } else {
      static_cast<uint16_t*>(data)[i] = FloatToF16Bits(v);
    }
  }
}

}  // namespace

void Check(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return;
  std::fprintf(stderr, "benchmark: %s failed: %s\n", what,
               cudaGetErrorString(error));
  std::abort();
}

void FillRandom(void* data, int64_t n, DType dtype, uint64_t seed, float mean,
                float stddev, cudaStream_t stream) {
  if (n <= 0) return;
  const int64_t blocks = std::min<int64_t>((n + 255) / 256, 132 * 16);
  FillKernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
      data, n, static_cast<int>(dtype), seed, mean, stddev);
  NG_BENCH_CUDA(cudaGetLastError());
}

Arena& Arena::Get() {
  static Arena* arena = [] {
    auto* a = new Arena;
    size_t free_bytes = 0, total = 0;
    NG_BENCH_CUDA(cudaMemGetInfo(&free_bytes, &total));
    // Most of the device, leaving room for the graphs, the runtime and the
    // caching allocator of the code under test.
    a->capacity_ = std::min<size_t>(free_bytes / 10 * 7, size_t{48} << 30);
    NG_BENCH_CUDA(cudaMalloc(&a->base_, a->capacity_));
    return a;
  }();
  return *arena;
}

void* Arena::Take(size_t bytes) {
  const size_t rounded = (bytes + 255) / 256 * 256;
  if (used_ + rounded > capacity_) {
    std::fprintf(stderr, "benchmark: arena of %zu B exhausted (%zu more)\n",
                 capacity_, rounded);
    std::abort();
  }
  void* p = base_ + used_;
  used_ += rounded;
  return p;
}

double MedianSecondsPerCall(cudaStream_t stream, int reps,
                            const std::function<void(int)>& launch, int warmup,
                            int timed) {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  NG_BENCH_CUDA(
      cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < reps; ++i) launch(i);
  NG_BENCH_CUDA(cudaStreamEndCapture(stream, &graph));
  NG_BENCH_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  for (int i = 0; i < warmup; ++i) NG_BENCH_CUDA(cudaGraphLaunch(exec, stream));
  cudaEvent_t begin, end;
  NG_BENCH_CUDA(cudaEventCreate(&begin));
  NG_BENCH_CUDA(cudaEventCreate(&end));
  std::vector<double> seconds;
  for (int i = 0; i < timed; ++i) {
    NG_BENCH_CUDA(cudaEventRecord(begin, stream));
    NG_BENCH_CUDA(cudaGraphLaunch(exec, stream));
    NG_BENCH_CUDA(cudaEventRecord(end, stream));
    NG_BENCH_CUDA(cudaEventSynchronize(end));
    float ms = 0.0f;
    NG_BENCH_CUDA(cudaEventElapsedTime(&ms, begin, end));
    seconds.push_back(ms * 1e-3 / reps);
  }
  NG_BENCH_CUDA(cudaEventDestroy(begin));
  NG_BENCH_CUDA(cudaEventDestroy(end));
  NG_BENCH_CUDA(cudaGraphExecDestroy(exec));
  NG_BENCH_CUDA(cudaGraphDestroy(graph));
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

double CopyBytesPerSecond(cudaStream_t stream, const std::vector<void*>& src,
                          const std::vector<void*>& dst, size_t bytes,
                          int reps) {
  const double s = MedianSecondsPerCall(stream, reps, [&](int i) {
    const size_t k = static_cast<size_t>(i) % src.size();
    NG_BENCH_CUDA(cudaMemcpyAsync(dst[k], src[k], bytes,
                                  cudaMemcpyDeviceToDevice, stream));
  });
  return 2.0 * static_cast<double>(bytes) / s;
}

std::string DeviceDescription() {
  int device = 0;
  NG_BENCH_CUDA(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  NG_BENCH_CUDA(cudaGetDeviceProperties(&prop, device));
  int driver = 0;
  NG_BENCH_CUDA(cudaDriverGetVersion(&driver));
  char text[256];
  std::snprintf(text, sizeof text, "%s, %d SMs, %d MiB L2, CUDA driver %d.%d",
                prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20,
                driver / 1000, (driver % 1000) / 10);
  return text;
}

}  // namespace normgraph::bench
