#ifndef NORMGRAPH_KERNELS_CUDA_RMS_NORM_KERNELS_H_
#define NORMGRAPH_KERNELS_CUDA_RMS_NORM_KERNELS_H_

// The CUDA row-norm kernels (every variant of kernels/rms_norm_params.h), as
// templates over the activation, weight and output dtypes. Each
// rms_norm_<dtype>.cu instantiates those of one activation dtype (separate
// files compile in parallel); kernels.cu plans the launches. The numerics are
// the shared ones of kernels/norm_numerics.h and the reduction follows its
// pairwise tree exactly (row_layout.h says how the tree is spread over
// threads), so every kernel agrees with the CPU reference bit for bit.
// Compiled with --fmad=false.
//
// Two kernels:
//  - RmsNormRegisterKernel<X, W, O, K> (rows of up to 16384 16-bit or 8192
//    f32 elements): each thread loads its K chunks of x (and residual, gate
//    and, for K <= 2, weight and gate) once, up front, keeps them in registers
//    through the reduction and writes from them: one pass over device memory,
//    all of a thread's loads in flight together. (With K = 4 the weight, an L2
//    hit shared by every row, and the gate are loaded after the reduction, two
//    chunks at a time, which keeps the kernel near 128 registers.)
//    Compiled for the dtype combinations models use
//    (RegisterCachedCombination).
//  - RmsNormStreamingKernel<X, W, O> (longer rows, and the other dtype
//    combinations): a binary-counter accumulator per thread and a second pass
//    that reads the row again.
//
// Every pointer may be unaligned (the CPU kernels accept that too) and row
// strides are arbitrary: a chunk of 8 elements is read and written with
// 16-byte vector accesses when its address allows, element accesses when the
// element is aligned, and byte accesses otherwise. The path is chosen per
// chunk inside the kernel, from the pointer values, so the launch never
// depends on them (a rebind changes pointers only).
//
// Programmatic dependent launch: every kernel first lets the next kernel on
// the stream start launching (griddepcontrol.launch_dependents) and then waits
// until the kernels before it have finished and their writes are visible
// (griddepcontrol.wait), before it touches memory. Launched with the
// programmatic-stream-serialization attribute (CudaLaunch::
// programmatic_dependency), the next node's launch overlaps this one's
// execution; launched without it, both instructions do nothing.

#include <cstdint>

#include "core/dtype.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/norm_numerics.h"
#include "kernels/rms_norm_params.h"

namespace normgraph {
namespace cuda_kernels {
// Internal linkage: each .cu file gets its own copies of what it uses.
namespace {

using numerics::Decode;
using numerics::kChunk;

template <DType D>
constexpr int kSize = D == DType::kF32 ? 4 : 2;

// --- programmatic dependent launch -------------------------------------------

__device__ __forceinline__ void AllowDependentLaunch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void WaitForPriorGrids() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// --- element and chunk access
// --------------------------------------------------

template <DType D>
__device__ __forceinline__ uint32_t LoadBits(const char* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (kSize<D> == 4 && (a & 3) == 0)
    return *reinterpret_cast<const uint32_t*>(p);
  if (kSize<D> == 2 && (a & 1) == 0)
    return *reinterpret_cast<const uint16_t*>(p);
  uint32_t bits = 0;
  for (int i = 0; i < kSize<D>; ++i) {
    bits |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return bits;
}

template <DType D>
__device__ __forceinline__ void StoreBits(char* p, uint32_t bits) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (kSize<D> == 4 && (a & 3) == 0) {
    *reinterpret_cast<uint32_t*>(p) = bits;
  } else if (kSize<D> == 2 && (a & 1) == 0) {
    *reinterpret_cast<uint16_t*>(p) = static_cast<uint16_t>(bits);
  } else {
    for (int i = 0; i < kSize<D>; ++i) {
      p[i] = static_cast<char>((bits >> (8 * i)) & 0xFF);
    }
  }
}

// The raw bits of one chunk (8 elements) as they lie in memory: 4 words for
// 16-bit types (two elements per word, the first in the low half), 8 for f32.
// Elements past the end of the row are zero bits (the value +0).
template <DType D>
struct Chunk {
  static constexpr int kWords = kSize<D> * kChunk / 4;
  uint32_t w[kWords];

  __device__ __forceinline__ uint32_t Bits(int i) const {
    if (kSize<D> == 4) return w[i];
    return (w[i / 2] >> (16 * (i & 1))) & 0xFFFFu;
  }
  __device__ __forceinline__ float Value(int i) const {
    return Decode<D>(Bits(i));
  }
  __device__ __forceinline__ void Zero() {
#pragma unroll
    for (int q = 0; q < kWords; ++q) w[q] = 0;
  }
};

__device__ __forceinline__ bool Aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

// Loads elements [0, count) of the chunk at `p` (count <= 8; none if <= 0).
template <DType D>
__device__ __forceinline__ void LoadChunk(const char* p, int count,
                                          Chunk<D>& c) {
  if (count == kChunk && Aligned16(p)) {
    const uint4* v = reinterpret_cast<const uint4*>(p);
#pragma unroll
    for (int q = 0; q < Chunk<D>::kWords / 4; ++q) {
      const uint4 u = v[q];
      c.w[4 * q] = u.x;
      c.w[4 * q + 1] = u.y;
      c.w[4 * q + 2] = u.z;
      c.w[4 * q + 3] = u.w;
    }
    return;
  }
  c.Zero();
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    if (i < count) {
      const uint32_t bits = LoadBits<D>(p + i * kSize<D>);
      if (kSize<D> == 4) {
        c.w[i] = bits;
      } else {
        c.w[i / 2] |= bits << (16 * (i & 1));
      }
    }
  }
}

// Stores elements [0, count) of `bits` (one element's bits each) at `p`.
template <DType D>
__device__ __forceinline__ void StoreChunk(char* p, int count,
                                           const uint32_t bits[kChunk]) {
  if (count == kChunk && Aligned16(p)) {
    if (kSize<D> == 2) {
      *reinterpret_cast<uint4*>(p) =
          make_uint4(bits[0] | (bits[1] << 16), bits[2] | (bits[3] << 16),
                     bits[4] | (bits[5] << 16), bits[6] | (bits[7] << 16));
    } else {
      reinterpret_cast<uint4*>(p)[0] =
          make_uint4(bits[0], bits[1], bits[2], bits[3]);
      reinterpret_cast<uint4*>(p)[1] =
          make_uint4(bits[4], bits[5], bits[6], bits[7]);
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    if (i < count) StoreBits<D>(p + i * kSize<D>, bits[i]);
  }
}

template <DType D>
__device__ __forceinline__ const char* Row(const void* base, int64_t row,
                                           int64_t stride) {
  return static_cast<const char*>(base) + row * stride * kSize<D>;
}

// Elements of chunk `c` that exist in a row of `cols` (0 past the end).
__device__ __forceinline__ int ChunkCount(int64_t c, int64_t cols) {
  const int64_t left = cols - c * kChunk;
  return left <= 0 ? 0 : left < kChunk ? static_cast<int>(left) : kChunk;
}

// --- the row reduction across threads
// -----------------------------------------

// Completes the row's pairwise tree from each thread's subtree sum: an xor
// butterfly within the warp (rows of <= 32 threads are aligned groups of
// lanes), then, for rows of several warps, across the row's warps through
// shared memory (each warp's sum is an aligned subtree too). Every thread of
// the block must call it (block-uniform `g`); each returns its row's total.
__device__ __forceinline__ double RowTotal(double sum, int g,
                                           double* warp_sums) {
  const int in_warp = g < 32 ? g : 32;
  for (int off = 1; off < in_warp; off *= 2) {
    sum = sum + __shfl_xor_sync(0xFFFFFFFFu, sum, off);
  }
  if (g > 32) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int warps = g / 32;  // per row
    if (lane == 0) warp_sums[warp] = sum;
    __syncthreads();
    const int first = warp / warps * warps;  // the row's first warp
    double s = lane < warps ? warp_sums[first + lane] : 0.0;
    for (int off = 1; off < warps; off *= 2) {
      s = s + __shfl_xor_sync(0xFFFFFFFFu, s, off);
    }
    sum = __shfl_sync(0xFFFFFFFFu, s, 0);
    __syncthreads();  // warp_sums is reused by the block's next rows
  }
  return sum;
}

// --- the register-cached kernel
// -------------------------------------------------

template <DType X, DType W, DType O, int K>
__global__ void __launch_bounds__(cuda_layout::MaxRegisterThreads(K))
    RmsNormRegisterKernel(const RmsNormParams p) {
  // Small K: every load up front. K = 4: the weight and the gate after the
  // reduction (within 128 registers).
  constexpr bool kEarlyWeight = K <= 2;
  AllowDependentLaunch();
  WaitForPriorGrids();
  // The layout (row_layout.h): G threads per row, each owning K contiguous
  // chunks; blockDim.x / G rows per block.
  const int g =
      static_cast<int>(cuda_layout::PaddedChunks(p.cols) / K);  // power of 2
  const int rows_per_block = static_cast<int>(blockDim.x) / g;
  const int lane_in_row = threadIdx.x & (g - 1);
  const int row_in_block = threadIdx.x / g;
  const bool hf = p.order == RoundingOrder::kHuggingFace;
  const bool scale = p.weight_kind == NormWeight::kScale;
  const bool gated = p.gate != nullptr;
  const bool has_residual = p.residual != nullptr;
  const int64_t first_chunk = static_cast<int64_t>(lane_in_row) * K;
  __shared__ double warp_sums[32];

  // The loop bound is the same for every thread of the block: all of them
  // reach every shuffle and barrier.
  for (int64_t row0 = static_cast<int64_t>(blockIdx.x) * rows_per_block;
       row0 < p.rows;
       row0 += static_cast<int64_t>(gridDim.x) * rows_per_block) {
    const int64_t row = row0 + row_in_block;
    const bool active = row < p.rows;
    const int64_t r = active ? row : 0;
    const char* x = Row<X>(p.x, r, p.x_stride);
    char* res =
        has_residual
            ? const_cast<char*>(Row<X>(p.residual, r, p.residual_stride))
            : nullptr;
    const char* gate = gated ? Row<X>(p.gate, r, p.gate_stride) : nullptr;
    const char* weight = static_cast<const char*>(p.weight);
    char* out = const_cast<char*>(Row<O>(p.out, r, p.out_stride));

    // Every load of the thread, issued before any is used.
    int count[K];
    Chunk<X> xc[K], rc[K], gc[K];
    Chunk<W> wc[K];
#pragma unroll
    for (int i = 0; i < K; ++i) {
      count[i] = active ? ChunkCount(first_chunk + i, p.cols) : 0;
      const int64_t j0 = (first_chunk + i) * kChunk;
      LoadChunk<X>(x + j0 * kSize<X>, count[i], xc[i]);
      if (has_residual) {
        LoadChunk<X>(res + j0 * kSize<X>, count[i], rc[i]);
      } else {
        rc[i].Zero();
      }
      if (kEarlyWeight) LoadChunk<W>(weight + j0 * kSize<W>, count[i], wc[i]);
      if (gated && kEarlyWeight) {
        LoadChunk<X>(gate + j0 * kSize<X>, count[i], gc[i]);
      } else {
        gc[i].Zero();
      }
    }

    // The norm input (numerics::NormInput), the residual written back, and
    // this thread's subtree of the sum of squares.
    float v[K][kChunk];
    double leaves[K];
#pragma unroll
    for (int i = 0; i < K; ++i) {
      if (has_residual) {
        uint32_t res_bits[kChunk];
#pragma unroll
        for (int e = 0; e < kChunk; ++e) {
          float rounded = 0.0f;
          v[i][e] = numerics::NormInput<X>(xc[i].Value(e), rc[i].Value(e), true,
                                           hf, &rounded);
          res_bits[e] = numerics::EncodeOutput<X>(rounded);
        }
        StoreChunk<X>(res + (first_chunk + i) * kChunk * kSize<X>, count[i],
                      res_bits);
      } else {
#pragma unroll
        for (int e = 0; e < kChunk; ++e) v[i][e] = xc[i].Value(e);
      }
      // Elements past the row are +0 and add exact zeros, as the tree's
      // padding does.
      leaves[i] = numerics::ChunkSumOfSquares(v[i], kChunk);
    }
    const double total =
        RowTotal(cuda_layout::SubtreeSum<K>(leaves), g, warp_sums);
    const float inv_rms = numerics::InvRms(total, p.cols, p.eps);

#pragma unroll
    for (int i = 0; i < K; ++i) {
      if (!kEarlyWeight) {
        // Two chunks' loads at a time: latency hidden, registers bounded.
        if (i % 2 == 0) {
#pragma unroll
          for (int q = i; q < i + 2 && q < K; ++q) {
            const int64_t j0 = (first_chunk + q) * kChunk;
            LoadChunk<W>(weight + j0 * kSize<W>, count[q], wc[q]);
            if (gated) LoadChunk<X>(gate + j0 * kSize<X>, count[q], gc[q]);
          }
        }
      }
      if (count[i] == 0) continue;
      uint32_t bits[kChunk];
#pragma unroll
      for (int e = 0; e < kChunk; ++e) {
        const float silu = gated ? numerics::Silu(gc[i].Value(e)) : 0.0f;
        bits[e] = numerics::EncodeOutput<O>(numerics::NormOutput<X, W>(
            v[i][e], inv_rms, wc[i].Value(e), scale, hf, gated, silu));
      }
      StoreChunk<O>(out + (first_chunk + i) * kChunk * kSize<O>, count[i],
                    bits);
    }
  }
}

// --- the streaming kernel (rows longer than the register-cached kernel takes)
// --

// The norm inputs of one chunk (numerics::NormInput), and with a residual the
// rounded sums that go back into it.
template <DType X>
__device__ __forceinline__ void LoadInputChunk(const RmsNormParams& p,
                                               const char* x, const char* res,
                                               int64_t j0, int count,
                                               float v[kChunk],
                                               float rounded[kChunk]) {
  const bool hf = p.order == RoundingOrder::kHuggingFace;
  Chunk<X> xc;
  LoadChunk<X>(x + j0 * kSize<X>, count, xc);
#pragma unroll
  for (int i = 0; i < kChunk; ++i) v[i] = xc.Value(i);
  if (res == nullptr) return;
  Chunk<X> rc;
  LoadChunk<X>(res + j0 * kSize<X>, count, rc);
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    v[i] = numerics::NormInput<X>(v[i], rc.Value(i), true, hf, &rounded[i]);
  }
}

template <DType X, DType W, DType O>
__global__ void RmsNormStreamingKernel(const RmsNormParams p) {
  AllowDependentLaunch();
  WaitForPriorGrids();
  const cuda_layout::RowLayout layout = cuda_layout::StreamingLayout(p.cols);
  const int threads_per_row = static_cast<int>(layout.threads_per_row);
  const int64_t k = layout.chunks_per_thread;
  const int64_t rows_per_block = layout.rows_per_block;
  const int lane_in_row = threadIdx.x & (threads_per_row - 1);
  const int row_in_block = threadIdx.x / threads_per_row;
  const bool hf = p.order == RoundingOrder::kHuggingFace;
  const bool scale = p.weight_kind == NormWeight::kScale;
  const bool gated = p.gate != nullptr;
  __shared__ double warp_sums[32];

  for (int64_t row0 = blockIdx.x * rows_per_block; row0 < p.rows;
       row0 += static_cast<int64_t>(gridDim.x) * rows_per_block) {
    const int64_t row = row0 + row_in_block;
    const bool active = row < p.rows;
    const char* x = active ? Row<X>(p.x, row, p.x_stride) : nullptr;
    char* res =
        active && p.residual != nullptr
            ? const_cast<char*>(Row<X>(p.residual, row, p.residual_stride))
            : nullptr;
    const int64_t first_chunk = lane_in_row * k;

    // Pass 1: this thread's aligned subtree of the pairwise sum of squares.
    double sum = 0.0;
    if (active) {
      numerics::PairwiseAccumulator<24> subtree;
      for (int64_t c = first_chunk; c < first_chunk + k; ++c) {
        const int count = ChunkCount(c, p.cols);
        double leaf = 0.0;
        if (count > 0) {
          float v[kChunk], rounded[kChunk];
          LoadInputChunk<X>(p, x, res, c * kChunk, count, v, rounded);
          leaf = numerics::ChunkSumOfSquares(v, kChunk);
        }
        subtree.Add(leaf);
      }
      sum = subtree.Total();
    }
    const float r = numerics::InvRms(RowTotal(sum, threads_per_row, warp_sums),
                                     p.cols, p.eps);

    // Pass 2: the same chunks again, now written.
    if (!active) continue;
    char* out = const_cast<char*>(Row<O>(p.out, row, p.out_stride));
    const char* gate = gated ? Row<X>(p.gate, row, p.gate_stride) : nullptr;
    const char* weight = static_cast<const char*>(p.weight);
    for (int64_t c = first_chunk; c < first_chunk + k; ++c) {
      const int count = ChunkCount(c, p.cols);
      if (count == 0) break;
      const int64_t j0 = c * kChunk;
      float v[kChunk], rounded[kChunk];
      LoadInputChunk<X>(p, x, res, j0, count, v, rounded);
      Chunk<W> wc;
      LoadChunk<W>(weight + j0 * kSize<W>, count, wc);
      Chunk<X> gc;
      gc.Zero();
      if (gated) LoadChunk<X>(gate + j0 * kSize<X>, count, gc);
      uint32_t bits[kChunk];
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        const float silu = gated ? numerics::Silu(gc.Value(i)) : 0.0f;
        bits[i] = numerics::EncodeOutput<O>(numerics::NormOutput<X, W>(
            v[i], r, wc.Value(i), scale, hf, gated, silu));
      }
      if (res != nullptr) {
        uint32_t res_bits[kChunk];
#pragma unroll
        for (int i = 0; i < kChunk; ++i)
          res_bits[i] = numerics::EncodeOutput<X>(rounded[i]);
        StoreChunk<X>(res + j0 * kSize<X>, count, res_bits);
      }
      StoreChunk<O>(out + j0 * kSize<O>, count, bits);
    }
  }
}

// Whether the register-cached kernel is compiled for (X, W, O): the
// combinations models use (weights in the activation dtype, or the f32 scale
// of the zero-centred norms, writing the activation dtype). The others
// (mixed 16-bit types, promoted f32 outputs) take the streaming kernel, which
// keeps the code, the binaries and the build small.
constexpr bool RegisterCachedCombination(DType x, DType w, DType o) {
  return o == x && (w == x || w == DType::kF32);
}

// The kernel for (X, W, O): the register-cached one with k chunks per thread
// (1, 2, or for 16-bit activations 4), or (k == 0) the streaming one; null if
// that kernel is not compiled.
template <DType X, DType W, DType O>
const void* RmsNormFunction(int64_t k) {
  if (k == 0) {
    return reinterpret_cast<const void*>(&RmsNormStreamingKernel<X, W, O>);
  }
  if constexpr (RegisterCachedCombination(X, W, O)) {
    switch (k) {
      case 1:
        return reinterpret_cast<const void*>(
            &RmsNormRegisterKernel<X, W, O, 1>);
      case 2:
        return reinterpret_cast<const void*>(
            &RmsNormRegisterKernel<X, W, O, 2>);
      case 4:
        if constexpr (X != DType::kF32) {
          return reinterpret_cast<const void*>(
              &RmsNormRegisterKernel<X, W, O, 4>);
        }
        return nullptr;
    }
  }
  return nullptr;
}

template <DType X, DType W>
const void* WithOutput(DType o, int64_t k) {
  if (o == X) return RmsNormFunction<X, W, X>(k);
  return RmsNormFunction<X, W, DType::kF32>(k);  // the promoted type
}

// The kernels of activation dtype X, for weight dtype w and output dtype o.
template <DType X>
const void* SelectForActivation(DType w, DType o, int64_t k) {
  switch (w) {
    case DType::kF32:
      return WithOutput<X, DType::kF32>(o, k);
    case DType::kBF16:
      return WithOutput<X, DType::kBF16>(o, k);
    case DType::kF16:
      return WithOutput<X, DType::kF16>(o, k);
  }
  return nullptr;
}

}  // namespace
}  // namespace cuda_kernels

// Defined by rms_norm_{f32,bf16,f16}.cu, one activation dtype each.
const void* SelectRmsNormF32(DType w, DType o, int64_t k);
const void* SelectRmsNormBf16(DType w, DType o, int64_t k);
const void* SelectRmsNormF16(DType w, DType o, int64_t k);

}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_CUDA_RMS_NORM_KERNELS_H_
