// The CUDA kernels: the row norm of every variant (kernels/rms_norm_params.h)
// and a byte copy. Correctness and bit parity with the CPU reference come
// first here: the numerics are the shared ones of kernels/norm_numerics.h and
// the reduction follows its pairwise tree exactly (row_layout.h says how the
// tree is spread over threads). Compiled with --fmad=false.
//
// Every pointer may be unaligned (the CPU kernels accept that too): a chunk of
// 8 elements is read with 16-byte vector loads when its address allows,
// element loads when the element is aligned, and byte loads otherwise. The
// path is chosen per chunk inside the kernel, from the pointer values, so the
// launch shape never depends on them.

#include <cstdint>
#include <cstring>

#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/norm_numerics.h"
#include "kernels/rms_norm_params.h"

namespace normgraph {
namespace {

using numerics::Decode;
using numerics::kChunk;

template <DType D>
constexpr int kSize = D == DType::kF32 ? 4 : 2;

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

// Elements [j0, j0 + count) of a row (count <= 8) as floats; zeros past count.
template <DType D>
__device__ __forceinline__ void LoadChunk(const char* row, int64_t j0,
                                          int count, float v[kChunk]) {
  const char* p = row + j0 * kSize<D>;
  if (count == kChunk && (reinterpret_cast<uintptr_t>(p) & 15) == 0) {
    if (kSize<D> == 2) {
      const uint4 u = *reinterpret_cast<const uint4*>(p);
      const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        v[2 * i] = Decode<D>(w[i] & 0xFFFFu);
        v[2 * i + 1] = Decode<D>(w[i] >> 16);
      }
    } else {
      const uint4 a = reinterpret_cast<const uint4*>(p)[0];
      const uint4 b = reinterpret_cast<const uint4*>(p)[1];
      const uint32_t w[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = Decode<D>(w[i]);
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    v[i] = i < count ? Decode<D>(LoadBits<D>(p + i * kSize<D>)) : 0.0f;
  }
}

template <DType D>
__device__ __forceinline__ void StoreChunk(char* row, int64_t j0, int count,
                                           const uint32_t bits[kChunk]) {
  char* p = row + j0 * kSize<D>;
  if (count == kChunk && (reinterpret_cast<uintptr_t>(p) & 15) == 0) {
    if (kSize<D> == 2) {
      uint4 u;
      u.x = bits[0] | (bits[1] << 16);
      u.y = bits[2] | (bits[3] << 16);
      u.z = bits[4] | (bits[5] << 16);
      u.w = bits[6] | (bits[7] << 16);
      *reinterpret_cast<uint4*>(p) = u;
    } else {
      reinterpret_cast<uint4*>(p)[0] =
          make_uint4(bits[0], bits[1], bits[2], bits[3]);
      reinterpret_cast<uint4*>(p)[1] =
          make_uint4(bits[4], bits[5], bits[6], bits[7]);
    }
    return;
  }
  for (int i = 0; i < count; ++i) StoreBits<D>(p + i * kSize<D>, bits[i]);
}

template <DType D>
__device__ __forceinline__ const char* Row(const void* base, int64_t row,
                                           int64_t stride) {
  return static_cast<const char*>(base) + row * stride * kSize<D>;
}

// The norm inputs of one chunk (numerics::NormInput), and with a residual the
// rounded sums that go back into it.
template <DType X>
__device__ __forceinline__ void LoadInputChunk(const RmsNormParams& p,
                                               const char* x, const char* res,
                                               int64_t j0, int count,
                                               float v[kChunk],
                                               float rounded[kChunk]) {
  const bool hf = p.order == RoundingOrder::kHuggingFace;
  LoadChunk<X>(x, j0, count, v);
  if (res == nullptr) return;
  float r[kChunk];
  LoadChunk<X>(res, j0, count, r);
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    v[i] = numerics::NormInput<X>(v[i], r[i], true, hf, &rounded[i]);
  }
}

template <DType X, DType W, DType O>
__global__ void RmsNormKernel(const RmsNormParams p) {
  const cuda_layout::RowLayout layout = cuda_layout::LayoutFor(p.cols);
  const int threads_per_row = static_cast<int>(layout.threads_per_row);
  const int64_t k = layout.chunks_per_thread;
  const int64_t rows_per_block = layout.rows_per_block;
  const int lane_in_row = threadIdx.x & (threads_per_row - 1);
  const int row_in_block = threadIdx.x / threads_per_row;
  const bool hf = p.order == RoundingOrder::kHuggingFace;
  const bool scale = p.weight_kind == NormWeight::kScale;
  const bool gated = p.gate != nullptr;
  __shared__ double warp_sums[32];

  // The loop bound is the same for every thread of the block: all of them
  // reach every shuffle and barrier.
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
        const int64_t j0 = c * kChunk;
        double leaf = 0.0;
        if (j0 < p.cols) {
          const int count =
              p.cols - j0 < kChunk ? static_cast<int>(p.cols - j0) : kChunk;
          float v[kChunk], rounded[kChunk];
          LoadInputChunk<X>(p, x, res, j0, count, v, rounded);
          leaf = numerics::ChunkSumOfSquares(v, count);
        }
        if (k == 1) {
          sum = leaf;
        } else {
          subtree.Add(leaf);
        }
      }
      if (k > 1) sum = subtree.Total();
    }
    // The butterfly completes the tree: threads t and t ^ off own adjacent
    // aligned subtrees of equal size.
    const int in_warp = threads_per_row < 32 ? threads_per_row : 32;
    for (int off = 1; off < in_warp; off *= 2) {
      sum = sum + __shfl_xor_sync(0xFFFFFFFFu, sum, off);
    }
    if (threads_per_row > 32) {
      const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
      const int warps = threads_per_row / 32;
      if (lane == 0) warp_sums[warp] = sum;
      __syncthreads();
      double s = lane < warps ? warp_sums[lane] : 0.0;
      for (int off = 1; off < warps; off *= 2) {
        s = s + __shfl_xor_sync(0xFFFFFFFFu, s, off);
      }
      sum = __shfl_sync(0xFFFFFFFFu, s, 0);
      __syncthreads();  // warp_sums is reused by the next row
    }
    const float r = numerics::InvRms(sum, p.cols, p.eps);

    // Pass 2: the same chunks again, now written.
    if (!active) continue;
    char* out = const_cast<char*>(Row<O>(p.out, row, p.out_stride));
    const char* gate = gated ? Row<X>(p.gate, row, p.gate_stride) : nullptr;
    const char* weight = static_cast<const char*>(p.weight);
    for (int64_t c = first_chunk; c < first_chunk + k; ++c) {
      const int64_t j0 = c * kChunk;
      if (j0 >= p.cols) break;
      const int count =
          p.cols - j0 < kChunk ? static_cast<int>(p.cols - j0) : kChunk;
      float v[kChunk], rounded[kChunk], w[kChunk], g[kChunk];
      LoadInputChunk<X>(p, x, res, j0, count, v, rounded);
      LoadChunk<W>(weight, j0, count, w);
      if (gated) LoadChunk<X>(gate, j0, count, g);
      uint32_t bits[kChunk];
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        const float silu = gated ? numerics::Silu(g[i]) : 0.0f;
        bits[i] = numerics::EncodeOutput<O>(
            numerics::NormOutput<X, W>(v[i], r, w[i], scale, hf, gated, silu));
      }
      if (res != nullptr) {
        uint32_t res_bits[kChunk];
#pragma unroll
        for (int i = 0; i < kChunk; ++i)
          res_bits[i] = numerics::EncodeOutput<X>(rounded[i]);
        StoreChunk<X>(res, j0, count, res_bits);
      }
      StoreChunk<O>(out, j0, count, bits);
    }
  }
}

template <DType X, DType W, DType O>
const void* RmsNormFunction() {
  return reinterpret_cast<const void*>(&RmsNormKernel<X, W, O>);
}

template <DType X, DType W>
const void* WithOutput(DType o) {
  if (o == X) return RmsNormFunction<X, W, X>();
  return RmsNormFunction<X, W, DType::kF32>();  // the promoted type
}

template <DType X>
const void* WithWeight(DType w, DType o) {
  switch (w) {
    case DType::kF32:
      return WithOutput<X, DType::kF32>(o);
    case DType::kBF16:
      return WithOutput<X, DType::kBF16>(o);
    case DType::kF16:
      return WithOutput<X, DType::kF16>(o);
  }
  return nullptr;
}

const void* SelectRmsNorm(DType x, DType w, DType o) {
  switch (x) {
    case DType::kF32:
      return WithWeight<DType::kF32>(w, o);
    case DType::kBF16:
      return WithWeight<DType::kBF16>(w, o);
    case DType::kF16:
      return WithWeight<DType::kF16>(w, o);
  }
  return nullptr;
}

// Enough blocks to fill the GPU many times over; a grid-stride loop does the
// rest.
constexpr int64_t kMaxBlocks = 1 << 20;

__global__ void CopyKernel(const CopyParams p) {
  const char* src = static_cast<const char*>(p.src);
  char* dst = static_cast<char*>(p.dst);
  const int64_t first =
      static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if (((reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst)) &
       15) == 0) {
    const int64_t vectors = p.bytes / 16;
    for (int64_t i = first; i < vectors; i += stride) {
      reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(src)[i];
    }
    done = vectors * 16;
  }
  for (int64_t i = done + first; i < p.bytes; i += stride) dst[i] = src[i];
}

}  // namespace

void PlanRmsNormCuda(const void* raw, CudaLaunch* launch) {
  RmsNormParams p;
  std::memcpy(&p, raw, sizeof p);
  const cuda_layout::RowLayout layout = cuda_layout::LayoutFor(p.cols);
  int64_t blocks = (p.rows + layout.rows_per_block - 1) / layout.rows_per_block;
  if (blocks < 1) blocks = 1;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  *launch = CudaLaunch{};
  launch->function = SelectRmsNorm(p.x_dtype, p.weight_dtype, p.out_dtype);
  launch->grid[0] = static_cast<uint32_t>(blocks);
  launch->block[0] = static_cast<uint32_t>(layout.block_threads);
}

void PlanCopyCuda(const void* raw, CudaLaunch* launch) {
  CopyParams p;
  std::memcpy(&p, raw, sizeof p);
  constexpr int64_t kThreads = 256;
  int64_t blocks = (p.bytes / 16 + kThreads - 1) / kThreads;
  if (blocks < 1) blocks = 1;
  if (blocks > 4096) blocks = 4096;
  *launch = CudaLaunch{};
  launch->function = reinterpret_cast<const void*>(&CopyKernel);
  launch->grid[0] = static_cast<uint32_t>(blocks);
  launch->block[0] = static_cast<uint32_t>(kThreads);
}

}  // namespace normgraph
