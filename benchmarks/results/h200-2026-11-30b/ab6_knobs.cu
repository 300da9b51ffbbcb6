// Prototype (not the product): what 1 / rms costs on the decode chain. The
// split decode norm of ab4 (bf16, one row of COLS over a cluster of CS CTAs,
// partial sums exchanged by st.async + mbarrier) with four ways to get
// inv_rms: INV 0 the exact float64 chain (float(1.0 / sqrt(m))), INV 1
// rsqrt(double) rounded to float when it is far from a float rounding
// boundary, else the exact chain, INV 2 a float32 rsqrt estimate refined by
// one float64 Newton step, the same guard, INV 3 rsqrtf alone (wrong bits:
// the floor). Checks the exact variants bit for bit against the product
// kernel, and the guarded functions against the exact chain on 2^26 means.
#include <cuda_runtime.h>
#define STR2(x) #x
#define STR(x) STR2(x)

#include <algorithm>
#include <cmath>
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

// float(1.0 / sqrt(m)) when `y` (an approximation of 1 / sqrt(m) within
// `margin` float64 ulps of the exact chain's float64 result) is far from a
// float32 rounding boundary and in the normal float range; else the exact
// chain. *slow says which.
__device__ __forceinline__ float Guarded(double y, double m, int margin,
                                         int* slow) {
  const unsigned long long bits = __double_as_longlong(y);
  const int e = static_cast<int>((bits >> 52) & 0x7ff);
  const int low = static_cast<int>(bits & ((1ull << 29) - 1));
  const int dist = low - (1 << 28);
  if (e >= 1023 - 126 && e <= 1023 + 127 && (dist > margin || dist < -margin)) {
    return static_cast<float>(y);
  }
  *slow = 1;
  return static_cast<float>(1.0 / sqrt(m));
}

template <int INV>
__device__ __forceinline__ float InvRmsVariant(double total, int64_t cols,
                                               float eps, int* slow) {
  if (INV == 0) return numerics::InvRms(total, cols, eps);
  const int k = __ffsll(cols) - 1;
  const double m =
      total * static_cast<double>(__int_as_float((127 - k) << 23)) +
      static_cast<double>(eps);
  if (INV == 1) return Guarded(rsqrt(m), m, 64, slow);
  if (INV == 2) {
    const float mf = static_cast<float>(m);
    float y0;
    asm("rsqrt.approx.ftz.f32 %0, %1;" : "=f"(y0) : "f"(mf));
    const double y = static_cast<double>(y0);
    // y1 = y + y * (1/2 - m y^2 / 2): relative error ~1.5 e0^2 (< 2^-43).
    const double h = fma(-0.5 * m * y, y, 0.5);
    const double y1 = fma(y, h, y);
    if (!(mf >= 1.17549435e-38f && mf <= 3.0e38f)) {
      *slow = 1;
      return static_cast<float>(1.0 / sqrt(m));
    }
    return Guarded(y1, m, 4096, slow);
  }
  return rsqrtf(static_cast<float>(m));
}

template <int INV>
__global__ void CheckInvRms(const double* means, int n, float eps,
                            unsigned long long* mismatches,
                            unsigned long long* slows) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x) {
    int slow = 0;
    // total = mean * cols with cols = 4096: exact scaling back.
    const float got = InvRmsVariant<INV>(means[i] * 4096.0, 4096, eps, &slow);
    const float want = numerics::InvRms(means[i] * 4096.0, 4096, eps);
    if (__float_as_uint(got) != __float_as_uint(want)) atomicAdd(mismatches, 1);
    if (slow) atomicAdd(slows, 1);
  }
}

// MODE 2: partial totals pushed into every CTA's shared memory with st.async,
// completion counted by each CTA's mbarrier (initialised, and made visible by a
// cluster barrier, before the PDL wait). MODE 0: the full split kernel. MODE 1:
// the same without the cluster exchange (wrong bits; the cost of the exchange
// by difference).
template <int CS, int MODE, int INV>
__global__ void __launch_bounds__(1024) ClusterRms(const RmsNormParams p) {
  AllowDependentLaunch();
  const unsigned rank = static_cast<unsigned>(ClusterRank());
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
  int slow = 0;
  const float inv_rms = InvRmsVariant<INV>(total, p.cols, p.eps, &slow);
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
      {"product split 8 (form 18) " STR(KNOB_ID),
       (const void*)&RmsNormRegisterKernel<DType::kBF16, DType::kBF16, 1, 18>,
       8},
      {"proto mbarrier 8 rsqrt64+guard", (const void*)&ClusterRms<8, 2, 1>, 8},
  };

  for (const V& v : vs)
    CK(cudaFuncSetAttribute(v.f, cudaFuncAttributeNonPortableClusterSizeAllowed,
                            1));
  // Bit-for-bit check against the product kernel over 64 different rows.
  void *ref, *got;
  CK(cudaMalloc(&ref, cols * 2));
  CK(cudaMalloc(&got, cols * 2));
  std::vector<uint16_t> a(cols), b(cols);
  for (int vi : {1, 2}) {
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
