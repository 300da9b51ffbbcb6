// Prototype (not the product): a decode-sized rms norm (bf16, HF order, one row
// of COLS) split over a thread-block cluster of CS CTAs on CS SMs, against the
// product's K = 1 kernel, in 256-node chains with PDL in a CUDA graph. Checks
// the outputs bit for bit against the product kernel first.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

__device__ __forceinline__ void ClusterArrive() {
  asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
}
__device__ __forceinline__ void ClusterWait() {
  asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
}
__device__ __forceinline__ unsigned ClusterRank() {
  unsigned r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
__device__ __forceinline__ double LoadRemote(const double* local,
                                             unsigned rank) {
  uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(local)), ra;
  double v;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;"
               : "=r"(ra)
               : "r"(a), "r"(rank));
  asm volatile("ld.shared::cluster.f64 %0, [%1];"
               : "=d"(v)
               : "r"(ra)
               : "memory");
  return v;
}

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ uint32_t MapRank(uint32_t a, unsigned rank) {
  uint32_t ra;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;"
               : "=r"(ra)
               : "r"(a), "r"(rank));
  return ra;
}

// MODE 2: partial totals pushed into every CTA's shared memory with st.async,
// completion counted by each CTA's mbarrier (initialised, and made visible by a
// cluster barrier, before the PDL wait). MODE 0: the full split kernel. MODE 1:
// the same without the cluster exchange (wrong bits; the cost of the exchange
// by difference).
template <int CS, int MODE>
__global__ void __launch_bounds__(1024) ClusterRms(const RmsNormParams p) {
  AllowDependentLaunch();
  const unsigned rank = ClusterRank();
  const int g = blockDim.x;  // threads of this CTA, one chunk each
  const int64_t c =
      static_cast<int64_t>(rank) * g + threadIdx.x;  // this thread's chunk
  const char* x = static_cast<const char*>(p.x) + c * kChunk * 2;
  const char* w = static_cast<const char*>(p.weight) + c * kChunk * 2;
  char* out = static_cast<char*>(p.out) + c * kChunk * 2;
  __shared__ double warp_sums[2 * 32];
  __shared__ double cta_total;
  __shared__ alignas(8) unsigned long long bar;
  __shared__ double slots[CS];
  if (MODE == 2) {
    if (threadIdx.x == 0) {
      asm volatile(
          "mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(SmemAddr(&bar))
          : "memory");
      asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    ClusterArrive();
    ClusterWait();
  }
  WaitForPriorGrids();
  Chunk<DType::kBF16> xc, wc;
  LoadFullChunk<DType::kBF16>(x, xc);
  LoadFullChunk<DType::kBF16>(w, wc);
  float v[kChunk];
#pragma unroll
  for (int e = 0; e < kChunk; ++e) v[e] = xc.Value(e);
  double leaves[1] = {numerics::ChunkSumOfSquares(v, kChunk)};
  const double part = RowTotalForLatency<1>(leaves, g, 0, warp_sums);
  double total = part;
  if (MODE == 2) {
    const uint32_t b = SmemAddr(&bar);
    if (threadIdx.x == 0) {
      asm volatile(
          "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b),
          "r"(CS * 8)
          : "memory");
    }
    if (threadIdx.x < CS) {
      asm volatile(
          "st.async.shared::cluster.mbarrier::complete_tx::bytes.f64 [%0], %1, "
          "[%2];" ::"r"(MapRank(SmemAddr(&slots[rank]), threadIdx.x)),
          "d"(part), "r"(MapRank(b, threadIdx.x))
          : "memory");
    }
    uint32_t done = 0;
    do {
      asm volatile(
          "{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], "
          "%2; selp.u32 %0, 1, 0, p; }"
          : "=r"(done)
          : "r"(b), "r"(0)
          : "memory");
    } while (!done);
    double t[CS];
#pragma unroll
    for (int r = 0; r < CS; ++r) t[r] = slots[r];
    total = cuda_layout::SubtreeSum<CS>(t);
  }
  if (MODE == 0) {
    if (threadIdx.x == 0) cta_total = part;
    ClusterArrive();
    ClusterWait();
    double t[CS];
#pragma unroll
    for (int r = 0; r < CS; ++r) t[r] = LoadRemote(&cta_total, r);
    ClusterArrive();  // this CTA's remote reads are done
    total = cuda_layout::SubtreeSum<CS>(t);
  }
  const float inv_rms = numerics::InvRms(total, p.cols, p.eps);
  Chunk<DType::kBF16> rounded, oc;
#pragma unroll
  for (int q = 0; q < kChunk / 2; ++q)
    rounded.w[q] = PackPair<DType::kBF16>(xc.Value(2 * q) * inv_rms,
                                          xc.Value(2 * q + 1) * inv_rms);
#pragma unroll
  for (int q = 0; q < kChunk / 2; ++q)
    oc.w[q] = PackedMul<DType::kBF16>(wc.w[q], rounded.w[q]);
  CanonicalizeNans<DType::kBF16>(oc);
  StoreFullChunk<DType::kBF16>(out, oc);
  if (MODE == 0)
    ClusterWait();  // no CTA exits while another may read its shared memory
}

void* Rand(size_t bytes, unsigned seed) {
  std::vector<uint16_t> h(bytes / 2);
  uint64_t st = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (size_t i = 0; i < h.size(); ++i) {
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    const uint32_t u = (uint32_t)(st >> 16);
    h[i] = (0x3E00 + u % 0x200) | ((u >> 12) % 2 ? 0x8000 : 0);
  }
  void* d;
  CK(cudaMalloc(&d, bytes));
  CK(cudaMemcpy(d, h.data(), bytes, cudaMemcpyHostToDevice));
  return d;
}

void Launch(const void* f, int grid, int block, int cluster, RmsNormParams p,
            cudaStream_t s, bool pdl) {
  cudaLaunchConfig_t cfg = {};
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

struct V {
  const char* name;
  const void* f;
  int cluster;
};

int main() {
  setvbuf(stdout, nullptr, _IONBF, 0);
  const int64_t cols = COLS;
  void* x = Rand(cols * 2 * 64, 1);
  void* w = Rand(cols * 2, 4);
  RmsNormParams base;
  base.x = x;
  base.weight = w;
  base.rows = 1;
  base.cols = cols;
  base.x_stride = base.out_stride = cols;
  base.weight_dtype = DType::kBF16;
  base.weight_kind = NormWeight::kMultiply;
  const int G = (int)(cols / 8);
  V vs[] = {
      {"product K=1",
       (const void*)&RmsNormRegisterKernel<DType::kBF16, DType::kBF16, 1, 2>,
       1},
      {"cluster 1", (const void*)&ClusterRms<1, 0>, 1},
      {"cluster 2", (const void*)&ClusterRms<2, 0>, 2},
      {"cluster 4", (const void*)&ClusterRms<4, 0>, 4},
      {"cluster 8", (const void*)&ClusterRms<8, 0>, 8},
      {"mbarrier 2", (const void*)&ClusterRms<2, 2>, 2},
      {"mbarrier 4", (const void*)&ClusterRms<4, 2>, 4},
      {"mbarrier 8", (const void*)&ClusterRms<8, 2>, 8},
      {"mbarrier 16", (const void*)&ClusterRms<16, 2>, 16},
      {"split 8 no exchange", (const void*)&ClusterRms<8, 1>, 8},
      {"split 2 no exchange", (const void*)&ClusterRms<2, 1>, 2},
      {"split 4 no exchange", (const void*)&ClusterRms<4, 1>, 4},
  };
  for (const V& v : vs)
    CK(cudaFuncSetAttribute(v.f, cudaFuncAttributeNonPortableClusterSizeAllowed,
                            1));
  // Bit-for-bit check against the product kernel over 64 different rows.
  void *ref, *got;
  CK(cudaMalloc(&ref, cols * 2));
  CK(cudaMalloc(&got, cols * 2));
  std::vector<uint16_t> a(cols), b(cols);
  for (int vi = 1; vi <= 8; ++vi) {
    int bad = 0;
    for (int row = 0; row < 64; ++row) {
      RmsNormParams p = base;
      p.x = (char*)x + row * cols * 2;
      p.out = ref;
      Launch(vs[0].f, 1, G, 1, p, 0, false);
      p.out = got;
      Launch(vs[vi].f, vs[vi].cluster, G / vs[vi].cluster, vs[vi].cluster, p, 0,
             false);
      CK(cudaDeviceSynchronize());
      CK(cudaMemcpy(a.data(), ref, cols * 2, cudaMemcpyDeviceToHost));
      CK(cudaMemcpy(b.data(), got, cols * 2, cudaMemcpyDeviceToHost));
      bad += a != b;
    }
    std::printf("check %s: %d of 64 rows differ\n", vs[vi].name, bad);
  }
  for (int round = 0; round < 2; ++round) {
    for (const V& v : vs) {
      void* act[2];
      CK(cudaMalloc(&act[0], cols * 2));
      CK(cudaMalloc(&act[1], cols * 2));
      CK(cudaMemcpy(act[1], x, cols * 2, cudaMemcpyDeviceToDevice));
      cudaStream_t st;
      CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
      cudaGraph_t gr;
      cudaGraphExec_t e;
      CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
      for (int i = 0; i < 256; ++i) {
        RmsNormParams p = base;
        p.x = act[(i + 1) % 2];
        p.out = act[i % 2];
        Launch(v.f, v.cluster, G / v.cluster, v.cluster, p, st, true);
      }
      CK(cudaStreamEndCapture(st, &gr));
      CK(cudaGraphInstantiate(&e, gr, 0));
      for (int i = 0; i < 20; ++i) CK(cudaGraphLaunch(e, st));
      CK(cudaStreamSynchronize(st));
      cudaEvent_t a0, b0;
      CK(cudaEventCreate(&a0));
      CK(cudaEventCreate(&b0));
      std::vector<float> t;
      for (int rep = 0; rep < 9; ++rep) {
        CK(cudaEventRecord(a0, st));
        for (int i = 0; i < 100; ++i) CK(cudaGraphLaunch(e, st));
        CK(cudaEventRecord(b0, st));
        CK(cudaEventSynchronize(b0));
        float ms;
        CK(cudaEventElapsedTime(&ms, a0, b0));
        t.push_back(ms * 1e3f / 100);
      }
      std::sort(t.begin(), t.end());
      std::printf("%-22s chain 256 x 1x%ld pdl: %.1f us/step %.3f us/node\n",
                  v.name, (long)cols, t[4], t[4] / 256);
      CK(cudaGraphExecDestroy(e));
      CK(cudaGraphDestroy(gr));
      CK(cudaStreamDestroy(st));
      CK(cudaFree(act[0]));
      CK(cudaFree(act[1]));
    }
  }
  return 0;
}
