#ifndef NORMGRAPH_BENCHMARKS_BENCH_CUDA_H_
#define NORMGRAPH_BENCHMARKS_BENCH_CUDA_H_

// What the GPU benchmarks share: a device arena carved into operand sets,
// random (never zero) device data of any dtype, CUDA-event timing of graph
// replays, and the device-to-device copy ceiling measured in the same run.

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace normgraph::bench {

// Aborts with the call and CUDA's message unless `error` is cudaSuccess.
void Check(cudaError_t error, const char* what);
#define NG_BENCH_CUDA(call) ::normgraph::bench::Check((call), #call)

// Fills n elements of `dtype` at `data` with normal(mean, stddev) values
// (a hash of the index and seed; deterministic), on `stream`.
void FillRandom(void* data, int64_t n, DType dtype, uint64_t seed, float mean,
                float stddev, cudaStream_t stream);

// One big device allocation, handed out in 256-byte aligned pieces; Reset
// starts over (the memory stays allocated for the process).
class Arena {
 public:
  static Arena& Get();
  void* Take(size_t bytes);
  void Reset() { used_ = 0; }
  size_t capacity() const { return capacity_; }
  size_t used() const { return used_; }

 private:
  char* base_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

// Captures `reps` calls of `launch(i)` (i = 0 .. reps-1) on `stream` into a
// CUDA graph, replays it `warmup` times, then `timed` times with events
// around each replay, and returns the median seconds per call.
double MedianSecondsPerCall(cudaStream_t stream, int reps,
                            const std::function<void(int)>& launch,
                            int warmup = 2, int timed = 7);

// The device-to-device copy ceiling in the same run: `sets` pairs of buffers
// of `bytes` each (src[i], dst[i]) copied in rotation with cudaMemcpyAsync,
// timed as above. Returns bytes read + written per second.
double CopyBytesPerSecond(cudaStream_t stream, const std::vector<void*>& src,
                          const std::vector<void*>& dst, size_t bytes,
                          int reps);

// "NVIDIA H200, 132 SMs, 60 MiB L2, driver 580.x": for benchmark context.
std::string DeviceDescription();

}  // namespace normgraph::bench

#endif  // NORMGRAPH_BENCHMARKS_BENCH_CUDA_H_
