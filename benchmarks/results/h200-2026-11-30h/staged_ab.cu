// Prototype harness (not the product): the product's register-cached kernel
// (kernels/cuda/rms_norm_kernels.h, with the experiment knobs of
// staged_ab_knobs.patch: rows ahead staged in shared memory by cp.async
// instead of held in registers) timed per launch on prefill shapes, built
// once per variant:
//   nvcc -std=c++17 -O3 --fmad=false -arch=sm_90a -I. -DVARIANT=name
//        [-DNG_EXP_STAGES=S] [-DNG_EXP_MAXNREG=N]
//        benchmarks/results/h200-2026-11-30h/staged_ab.cu -o staged_ab_name
// The grid is the product's: row groups, capped at the blocks the GPU holds
// at once with the variant's registers and shared memory. Inputs
// rotate over windows past the 60 MB L2; each case prints the median of 11
// timed batches of 20 launches and an FNV hash of its first launch's outputs
// (out and the residual written back), so variants are compared bit for bit.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kernels/cuda/rms_norm_kernels.h"

#define STR2(x) #x
#define STR(x) STR2(x)
using namespace normgraph;
using namespace normgraph::cuda_kernels;
#define CK(x)                                                                 \
  do {                                                                        \
    cudaError_t ck_ = (x);                                                    \
    if (ck_ != cudaSuccess) {                                                 \
      std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(ck_)); \
      std::exit(1);                                                           \
    }                                                                         \
  } while (0)

// bf16 bits of magnitude about 2^-3..2^3 with random signs (never zero).
void* Rand(size_t bytes, unsigned seed) {
  std::vector<uint16_t> h(bytes / 2);
  uint64_t st = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (size_t i = 0; i < h.size(); ++i) {
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    const uint32_t u = (uint32_t)(st >> 16);
    h[i] = (0x3E00 + u % 0x300) | ((u >> 12) % 2 ? 0x8000 : 0);
  }
  void* d;
  CK(cudaMalloc(&d, bytes));
  CK(cudaMemcpy(d, h.data(), bytes, cudaMemcpyHostToDevice));
  return d;
}

unsigned long long Hash(const void* d, size_t bytes, unsigned long long x) {
  std::vector<unsigned char> h(bytes);
  CK(cudaMemcpy(h.data(), d, bytes, cudaMemcpyDeviceToHost));
  for (unsigned char c : h) x = (x ^ c) * 1099511628211ull;
  return x;
}

constexpr DType B = DType::kBF16;
constexpr DType F = DType::kF32;
struct Case {
  const char* name;
  const void* f;
  int k;
  int64_t rows, cols;
  bool residual, gated, scale;
};

int main() {
  setvbuf(stdout, nullptr, _IONBF, 0);
  int sms = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const size_t max_elems = 32768ull * 4096;
  void* x = Rand(max_elems * 2, 1);
  void* res0 = Rand(max_elems * 2, 2);
  void* gate = Rand(max_elems * 2, 3);
  void* wb = Rand(16384 * 2, 4);
  // f32 scale 1 + w: w's bf16 values widened.
  void* wf;
  {
    std::vector<uint16_t> h(16384);
    CK(cudaMemcpy(h.data(), wb, h.size() * 2, cudaMemcpyDeviceToHost));
    std::vector<uint32_t> f(16384);
    for (size_t i = 0; i < f.size(); ++i) f[i] = (uint32_t)h[i] << 16;
    CK(cudaMalloc(&wf, f.size() * 4));
    CK(cudaMemcpy(wf, f.data(), f.size() * 4, cudaMemcpyHostToDevice));
  }
  void *res, *out;
  CK(cudaMalloc(&res, max_elems * 2));
  CK(cudaMalloc(&out, max_elems * 2));
  const void* fa2 = (const void*)&RmsNormRegisterKernel<B, F, 2, 7>;
  const void* fa4 = (const void*)&RmsNormRegisterKernel<B, F, 4, 7>;
  const void* rms4 = (const void*)&RmsNormRegisterKernel<B, B, 4, 2>;
  const void* rmse4 = (const void*)&RmsNormRegisterKernel<B, B, 4, 66>;
  const void* zc4 = (const void*)&RmsNormRegisterKernel<B, F, 4, 6>;
  const void* g4 = (const void*)&RmsNormRegisterKernel<B, B, 4, 10>;
  const void* la4 = (const void*)&RmsNormRegisterKernel<B, B, 4, 3>;
  const Case cases[] = {
      {"fused_add 4096x1536 K=2", fa2, 2, 4096, 1536, true, false, true},
      {"fused_add 32768x1536 K=2", fa2, 2, 32768, 1536, true, false, true},
      {"fused_add 32768x2560 K=2", fa2, 2, 32768, 2560, true, false, true},
      {"fused_add 16384x5120 K=2", fa2, 2, 16384, 5120, true, false, true},
      {"fused_add 16384x7168 K=2", fa2, 2, 16384, 7168, true, false, true},
      {"fused_add 32768x4096 K=2", fa2, 2, 32768, 4096, true, false, true},
      {"fused_add 32768x4096 K=4", fa4, 4, 32768, 4096, true, false, true},
      {"fused_add 1024x1536 K=4", fa4, 4, 1024, 1536, true, false, true},
      {"fused_add 4096x16384 K=4", fa4, 4, 4096, 16384, true, false, true},
      {"fused_add 8192x16384 K=4", fa4, 4, 8192, 16384, true, false, true},
      {"fused_add 4096x8192 K=4", fa4, 4, 4096, 8192, true, false, true},
      {"fused_add 16384x8192 K=4", fa4, 4, 16384, 8192, true, false, true},
      {"llama_add 4096x16384 K=4", la4, 4, 4096, 16384, true, false, false},
      {"llama_add 4096x8192 K=4", la4, 4, 4096, 8192, true, false, false},
      {"llama_add 32768x4096 K=4", la4, 4, 32768, 4096, true, false, false},
      {"rms 32768x4096 K=4", rms4, 4, 32768, 4096, false, false, false},
      {"rms 4096x16384 K=4", rms4, 4, 4096, 16384, false, false, false},
      {"rms 32768x16384 K=4", rms4, 4, 8192, 16384, false, false, false},
      {"rms 4096x1536 K=4 empty", rmse4, 4, 4096, 1536, false, false, false},
      {"rms 32768x1536 K=4 empty", rmse4, 4, 32768, 1536, false, false, false},
      {"zc 4096x16384 K=4", zc4, 4, 4096, 16384, false, false, true},
      {"gated 32768x4096 K=4", g4, 4, 32768, 4096, false, true, false},
      {"gated 4096x16384 K=4", g4, 4, 4096, 16384, false, true, false},
      {"gated 4096x8192 K=4", g4, 4, 4096, 8192, false, true, false},
      {"rms 4096x8192 K=4", rms4, 4, 4096, 8192, false, false, false},
  };
  for (const Case& c : cases) {
    cudaFuncAttributes a;
    CK(cudaFuncGetAttributes(&a, c.f));
    std::printf("%s %-26s regs %d local %zu\n", STR(VARIANT), c.name, a.numRegs,
                a.localSizeBytes);
  }
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cudaEvent_t a0, b0;
  CK(cudaEventCreate(&a0));
  CK(cudaEventCreate(&b0));
  for (int round = 0; round < 2; ++round) {
    for (const Case& c : cases) {
      const cuda_layout::RowLayout l =
          cuda_layout::RegisterLayout(c.rows, c.cols, c.k, 128);
      const int block = (int)l.block_threads;
#ifndef NG_EXP_STAGES
#define NG_EXP_STAGES 0
#endif
      const int stages = c.k >= 2 ? NG_EXP_STAGES : 0;
      const size_t smem = (size_t)stages *
                          (1 + c.residual + (c.gated && stages >= 2)) * c.k *
                          16 * block;
      CK(cudaFuncSetAttribute(c.f, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              (int)smem));
      int per_sm = 0;
      CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, c.f, block,
                                                       smem));
      const int64_t groups = (c.rows + l.rows_per_block - 1) / l.rows_per_block;
      const int grid = (int)std::min<int64_t>(groups, (int64_t)per_sm * sms);
      RmsNormParams p;
      p.x = x;
      p.weight = c.scale ? wf : wb;
      p.gate = c.gated ? gate : nullptr;
      p.residual = c.residual ? res : nullptr;
      p.out = out;
      p.rows = c.rows;
      p.cols = c.cols;
      p.x_stride = p.gate_stride = p.residual_stride = p.out_stride = c.cols;
      p.x_dtype = p.out_dtype = B;
      p.weight_dtype = c.scale ? F : B;
      p.weight_kind = c.scale ? NormWeight::kScale : NormWeight::kMultiply;
      p.order = RoundingOrder::kHuggingFace;
      const int64_t bytes = c.rows * c.cols * 2;
      CK(cudaMemcpyAsync(res, res0, bytes, cudaMemcpyDeviceToDevice, st));
      void* args[] = {&p};
      CK(cudaLaunchKernel(c.f, dim3(grid), dim3(block), args, smem, st));
      CK(cudaStreamSynchronize(st));
      unsigned long long hash = Hash(out, bytes, 1469598103934665603ull);
      if (c.residual) hash = Hash(res, bytes, hash);
      const int windows = (int)std::max<int64_t>(
          1, std::min<int64_t>(8, (int64_t)max_elems * 2 / bytes));
      std::vector<float> t;
      for (int rep = 0; rep < 11; ++rep) {
        CK(cudaEventRecord(a0, st));
        for (int i = 0; i < 20; ++i) {
          RmsNormParams q = p;
          const int64_t off = (i % windows) * bytes;
          q.x = (char*)x + off;
          if (c.gated) q.gate = (char*)gate + off;
          // The residual rotates over res0's windows (rewritten each time:
          // values stay within a few doublings over the run).
          if (c.residual) q.residual = (char*)res0 + off;
          q.out = (char*)out + off;
          void* qa[] = {&q};
          CK(cudaLaunchKernel(c.f, dim3(grid), dim3(block), qa, smem, st));
        }
        CK(cudaEventRecord(b0, st));
        CK(cudaEventSynchronize(b0));
        float ms;
        CK(cudaEventElapsedTime(&ms, a0, b0));
        t.push_back(ms * 1e3f / 20);
      }
      std::sort(t.begin(), t.end());
      std::printf(
          "%s round %d %-26s %9.2f us grid %d x %d smem %zu hash %016llx\n",
          STR(VARIANT), round, c.name, t[t.size() / 2], grid, block, smem,
          hash);
    }
  }
  return 0;
}
