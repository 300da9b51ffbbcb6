// Prototype harness (not the product): the product's ungated K = 1 register
// kernels as 256-node chains replayed from a CUDA graph, with and without
// programmatic dependent launch, in three builds of a launch: the usual form;
// the wide form (kWideForm: launch bounds of 128 registers and blocks of at
// most 512 threads; the product compiles it for gated forms only); and the
// usual form with 120 KiB of dynamic shared memory it does not use, so that
// an SM holds one of its CTAs at a time, as the gated wide kernel's 89
// registers allow (the "spread" launch). Prints an FNV hash of each chain's
// output so that the builds can be compared bit for bit.
#include <cuda_runtime.h>

#define STR2(x) #x
#define STR(x) STR2(x)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kernels/cuda/rms_norm_kernels.h"
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
void* Rand(size_t bytes, unsigned seed, int spread) {
  std::vector<uint16_t> h(bytes / 2);
  uint64_t st = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (size_t i = 0; i < h.size(); ++i) {
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    const uint32_t u = (uint32_t)(st >> 16);
    h[i] = (0x3E00 + u % spread) | ((u >> 12) % 2 ? 0x8000 : 0);
  }
  void* d;
  CK(cudaMalloc(&d, bytes));
  CK(cudaMemcpy(d, h.data(), bytes, cudaMemcpyHostToDevice));
  return d;
}

void Launch(const void* f, int grid, int block, int cluster, RmsNormParams p,
            cudaStream_t s, bool pdl, int smem = 0) {
  cudaLaunchConfig_t cfg = {};
  cfg.dynamicSmemBytes = smem;
  cfg.gridDim = dim3(grid);
  cfg.blockDim = dim3(block);
  cfg.stream = s;
  cudaLaunchAttribute attr[2];
  int n = 0;
  if (pdl) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  if (cluster > 1) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = cluster;
    attr[n].val.clusterDim.y = 1;
    attr[n].val.clusterDim.z = 1;
    ++n;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  void* args[] = {&p};
  CK(cudaLaunchKernelExC(&cfg, f, args));
}

unsigned long long Hash(const void* d, size_t bytes) {
  std::vector<unsigned char> h(bytes);
  CK(cudaMemcpy(h.data(), d, bytes, cudaMemcpyDeviceToHost));
  unsigned long long x = 1469598103934665603ull;
  for (unsigned char c : h) x = (x ^ c) * 1099511628211ull;
  return x;
}

constexpr DType B = DType::kBF16;
constexpr DType F = DType::kF32;
struct Chain {
  const char* name;
  int64_t rows, cols;
  const void* f;
  int grid, block;
  bool pdl, residual, scale;
  int smem;  // dynamic shared memory of each CTA (unused by the kernel)
};

int main() {
  setvbuf(stdout, nullptr, _IONBF, 0);
  const size_t max_elems = 2048ull * 4096;
  void* x = Rand(max_elems * 2, 1, 0x200);
  void* res0 = Rand(max_elems * 2, 3, 0x200);
  void* w = Rand(16384 * 2, 4, 0x200);
  void* ws = Rand(16384 * 4, 5, 0x200);  // f32 scale: any finite values
  void* res;
  CK(cudaMalloc(&res, max_elems * 2));
  const void* rms = (const void*)&RmsNormRegisterKernel<B, B, 1, kHfForm>;
  const void* rms_w =
      (const void*)&RmsNormRegisterKernel<B, B, 1, kHfForm | kWideForm>;
  constexpr int kZcAdd = kResidualForm | kHfForm | kScaleForm;
  const void* zca = (const void*)&RmsNormRegisterKernel<B, F, 1, kZcAdd>;
  const void* zca_w =
      (const void*)&RmsNormRegisterKernel<B, F, 1, kZcAdd | kWideForm>;
  constexpr int kSpreadSmem = 120 * 1024;
  for (const void* f : {rms, rms_w, zca, zca_w}) {
    CK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            kSpreadSmem));
  }
  std::vector<Chain> chains;
  static char names[128][64];
  int used = 0;
  const char* builds[] = {"usual", "wide", "spread"};
  auto add = [&](const char* what, int64_t rows, int64_t cols, int grid,
                 int block, const void* usual, const void* wide, bool residual,
                 bool scale) {
    for (int b = 0; b < 3; ++b) {
      for (int pdl = 0; pdl < 2; ++pdl) {
        char* n = names[used++];
        std::snprintf(n, 64, "%s %lldx%lld %s%s", what, (long long)rows,
                      (long long)cols, builds[b], pdl ? " pdl" : "");
        chains.push_back({n, rows, cols, b == 1 ? wide : usual, grid, block,
                          pdl == 1, residual, scale, b == 2 ? kSpreadSmem : 0});
      }
    }
  };
  for (int64_t batch : {16, 24, 32, 48, 64}) {
    add("rms", batch, 4096, (int)batch, 512, rms, rms_w, false, false);
  }
  for (int64_t batch : {32, 64}) {
    add("zc+add", batch, 4096, (int)batch, 512, zca, zca_w, true, true);
  }
  for (int64_t rows : {512, 2048}) {
    add("rms heads", rows, 128, (int)(rows / 16), 256, rms, rms_w, false,
        false);
  }
  for (int round = 0; round < 2; ++round) {
    for (const Chain& s : chains) {
      RmsNormParams p;
      p.weight = s.scale ? ws : w;
      p.rows = s.rows;
      p.cols = s.cols;
      p.x_stride = p.out_stride = p.residual_stride = s.cols;
      p.weight_dtype = s.scale ? F : B;
      p.weight_kind = s.scale ? NormWeight::kScale : NormWeight::kMultiply;
      p.order = RoundingOrder::kHuggingFace;
      p.residual = s.residual ? res : nullptr;
      cudaStream_t st;
      CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
      cudaEvent_t a0, b0;
      CK(cudaEventCreate(&a0));
      CK(cudaEventCreate(&b0));
      void* act[2];
      const size_t bytes = s.rows * s.cols * 2;
      CK(cudaMalloc(&act[0], bytes));
      CK(cudaMalloc(&act[1], bytes));
      cudaGraph_t gr;
      cudaGraphExec_t e;
      CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
      for (int i = 0; i < 256; ++i) {
        RmsNormParams q = p;
        q.x = act[(i + 1) % 2];
        q.out = act[i % 2];
        Launch(s.f, s.grid, s.block, 1, q, st, s.pdl, s.smem);
      }
      CK(cudaStreamEndCapture(st, &gr));
      CK(cudaGraphInstantiate(&e, gr, 0));
      // One replay from fixed inputs for the hash, then the timed ones.
      CK(cudaMemcpy(act[1], x, bytes, cudaMemcpyDeviceToDevice));
      CK(cudaMemcpy(res, res0, bytes, cudaMemcpyDeviceToDevice));
      CK(cudaGraphLaunch(e, st));
      CK(cudaStreamSynchronize(st));
      const unsigned long long hash =
          Hash(act[1], bytes) ^ (s.residual ? Hash(res, bytes) : 0);
      for (int i = 0; i < 20; ++i) CK(cudaGraphLaunch(e, st));
      CK(cudaStreamSynchronize(st));
      std::vector<float> t;
      for (int rep = 0; rep < 9; ++rep) {
        CK(cudaEventRecord(a0, st));
        for (int i = 0; i < 50; ++i) CK(cudaGraphLaunch(e, st));
        CK(cudaEventRecord(b0, st));
        CK(cudaEventSynchronize(b0));
        float ms;
        CK(cudaEventElapsedTime(&ms, a0, b0));
        t.push_back(ms * 1e3f / 50 / 256);
      }
      CK(cudaGraphExecDestroy(e));
      CK(cudaGraphDestroy(gr));
      CK(cudaFree(act[0]));
      CK(cudaFree(act[1]));
      std::sort(t.begin(), t.end());
      std::printf("round %d %-28s %7.3f us/node hash %016llx\n", round, s.name,
                  t[t.size() / 2], hash);
      CK(cudaEventDestroy(a0));
      CK(cudaEventDestroy(b0));
      CK(cudaStreamDestroy(st));
    }
  }
  return 0;
}
