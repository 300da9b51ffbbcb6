// How long n small host<->device copies take on this host: one
// cudaMemcpyAsync each (pinned source, one stream, one wait at the end),
// against one cudaMemcpyBatchAsync; and the same for reads.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#define CK(x)                                                               \
  do {                                                                      \
    cudaError_t e = (x);                                                    \
    if (e != cudaSuccess) {                                                 \
      std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); \
      std::exit(1);                                                         \
    }                                                                       \
  } while (0)
double Now() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
int main() {
  const int kN = 256;
  const size_t kBytes = 8192;
  std::vector<void*> dev(kN);
  for (auto& d : dev) CK(cudaMalloc(&d, kBytes));
  char* pinned;
  CK(cudaMallocHost(&pinned, kN * kBytes));
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  std::vector<void*> dsts(kN), srcs(kN);
  std::vector<size_t> sizes(kN, kBytes);
  for (int rep = 0; rep < 5; ++rep) {
    double t0 = Now();
    for (int i = 0; i < kN; ++i)
      CK(cudaMemcpyAsync(dev[i], pinned + i * kBytes, kBytes,
                         cudaMemcpyHostToDevice, s));
    double t1 = Now();
    CK(cudaStreamSynchronize(s));
    double t2 = Now();
    for (int i = 0; i < kN; ++i) {
      dsts[i] = dev[i];
      srcs[i] = pinned + i * kBytes;
    }
    cudaMemcpyAttributes attr = {};
    attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
    size_t idx = 0;
    double t3 = Now();
    CK(cudaMemcpyBatchAsync(dsts.data(), srcs.data(), sizes.data(), kN, &attr,
                            &idx, 1, s));
    double t4 = Now();
    CK(cudaStreamSynchronize(s));
    double t5 = Now();
    for (int i = 0; i < kN; ++i)
      CK(cudaMemcpyAsync(pinned + i * kBytes, dev[i], kBytes,
                         cudaMemcpyDeviceToHost, s));
    double t6 = Now();
    CK(cudaStreamSynchronize(s));
    double t7 = Now();
    for (int i = 0; i < kN; ++i) {
      dsts[i] = pinned + i * kBytes;
      srcs[i] = dev[i];
    }
    double t8 = Now();
    CK(cudaMemcpyBatchAsync(dsts.data(), srcs.data(), sizes.data(), kN, &attr,
                            &idx, 1, s));
    double t9 = Now();
    CK(cudaStreamSynchronize(s));
    double t10 = Now();
    double t11 = Now();
    for (int i = 0; i < kN; ++i) CK(cudaSetDevice(0));
    double t12 = Now();
    double t13 = Now();
    for (int i = 0; i < 16; ++i) {
      CK(cudaMemcpyAsync(dev[0], pinned, kBytes, cudaMemcpyHostToDevice, s));
      CK(cudaStreamSynchronize(s));
    }
    double t14 = Now();
    double t15 = Now();
    for (int i = 0; i < 16; ++i) CK(cudaDeviceSynchronize());
    double t16 = Now();
    std::printf(
        "rep %d: %d x 8 KiB H2D memcpyAsync: enqueue %.1f us, wait %.1f us | "
        "batch: enqueue %.1f, wait %.1f | D2H memcpyAsync enqueue %.1f wait "
        "%.1f | batch enqueue %.1f wait %.1f | cudaSetDevice %.3f us each | "
        "sync copy %.1f us each | idle deviceSync %.1f us each\n",
        rep, kN, t1 - t0, t2 - t1, t4 - t3, t5 - t4, t6 - t5, t7 - t6, t9 - t8,
        t10 - t9, (t12 - t11) / kN, (t14 - t13) / 16, (t16 - t15) / 16);
  }
  return 0;
}
