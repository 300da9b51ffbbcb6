// See packed_arithmetic_check.h.

#include <cuda_runtime.h>

#include <vector>

#include "absl/status/status.h"
#include "core/cuda/cuda_status.h"
#include "kernels/cuda/packed_arithmetic_check.h"
#include "kernels/cuda/rms_norm_kernels.h"

namespace normgraph {
namespace {

constexpr int kThreads = 256;
constexpr int kValues = 1 << 16;
constexpr int kFields = 5;

template <DType D>
__device__ bool SameResult(uint32_t packed_half, float exact) {
  const uint32_t want =
      D == DType::kBF16 ? FloatToBf16Bits(exact) : FloatToF16Bits(exact);
  const float got = numerics::Decode<D>(packed_half);
  if (got != got) return exact != exact;
  return packed_half == want;
}

// Block a checks every b: thread t the b = t + 256 j. Per block (no atomics):
// [0] differing sums, [1] differing products, [2..3] one example of each
// (0xFFFFFFFF if none), [4] pairs checked.
template <DType D>
__global__ void CheckPairs(uint32_t* out) {
  const uint32_t a = blockIdx.x;
  uint32_t adds = 0, muls = 0, checked = 0, add_example = 0xFFFFFFFFu,
           mul_example = 0xFFFFFFFFu;
  for (uint32_t b = threadIdx.x; b < kValues; b += kThreads) {
    const uint32_t ab = a | (b << 16), ba = b | (a << 16);
    const float fa = numerics::Decode<D>(a), fb = numerics::Decode<D>(b);
    const uint32_t sum = cuda_kernels::PackedAdd<D>(ab, ba);
    const uint32_t product = cuda_kernels::PackedMul<D>(ab, ba);
    // Low half: a op b; high half: b op a.
    const bool sum_ok = SameResult<D>(sum & 0xFFFFu, fa + fb) &&
                        SameResult<D>(sum >> 16, fb + fa);
    const bool product_ok = SameResult<D>(product & 0xFFFFu, fa * fb) &&
                            SameResult<D>(product >> 16, fb * fa);
    if (!sum_ok && adds++ == 0) add_example = ab;
    if (!product_ok && muls++ == 0) mul_example = ab;
    ++checked;
  }
  __shared__ uint32_t counts[kThreads][kFields];
  counts[threadIdx.x][0] = adds;
  counts[threadIdx.x][1] = muls;
  counts[threadIdx.x][2] = add_example;
  counts[threadIdx.x][3] = mul_example;
  counts[threadIdx.x][4] = checked;
  __syncthreads();
  if (threadIdx.x == 0) {
    uint32_t total[kFields] = {0, 0, 0xFFFFFFFFu, 0xFFFFFFFFu, 0};
    for (int t = 0; t < kThreads; ++t) {
      total[0] += counts[t][0];
      total[1] += counts[t][1];
      total[4] += counts[t][4];
      if (total[2] == 0xFFFFFFFFu) total[2] = counts[t][2];
      if (total[3] == 0xFFFFFFFFu) total[3] = counts[t][3];
    }
    for (int i = 0; i < kFields; ++i) out[blockIdx.x * kFields + i] = total[i];
  }
}

// The CUDA call `what`'s result as a status (core/cuda/cuda_status.h).
absl::Status Check(cudaError_t e, const char* what) {
  return CudaStatus(e, what, "packed arithmetic check");
}

}  // namespace

absl::StatusOr<PackedArithmeticMismatches> CountPackedArithmeticMismatches(
    DType dtype) {
  if (dtype != DType::kBF16 && dtype != DType::kF16) {
    return absl::InvalidArgumentError(
        "packed arithmetic check: dtype must be bf16 or f16");
  }
  uint32_t* device = nullptr;
  const size_t bytes = sizeof(uint32_t) * kFields * kValues;
  absl::Status status = Check(cudaMalloc(&device, bytes), "cudaMalloc");
  if (!status.ok()) return status;
  if (dtype == DType::kBF16) {
    CheckPairs<DType::kBF16><<<kValues, kThreads>>>(device);
  } else {
    CheckPairs<DType::kF16><<<kValues, kThreads>>>(device);
  }
  std::vector<uint32_t> host(kFields * kValues);
  status.Update(Check(cudaGetLastError(), "launch"));
  if (status.ok()) {
    status.Update(
        Check(cudaMemcpy(host.data(), device, bytes, cudaMemcpyDeviceToHost),
              "cudaMemcpy"));
  }
  status.Update(Check(cudaFree(device), "cudaFree"));
  if (!status.ok()) return status;
  PackedArithmeticMismatches m;
  for (int a = 0; a < kValues; ++a) {
    const uint32_t* block = &host[kFields * a];
    m.pairs += block[4];
    if (block[0] != 0 && m.add == 0) m.example_add = block[2];
    if (block[1] != 0 && m.mul == 0) m.example_mul = block[3];
    m.add += block[0];
    m.mul += block[1];
  }
  return m;
}

}  // namespace normgraph
