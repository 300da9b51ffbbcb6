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
//  - RmsNormRegisterKernel<X, W, K, kForm> (rows of up to 16384 elements,
//    output in the activation dtype): one kernel per form
//    (residual, rounding order, scale, gate: FormOf), so no thread holds
//    registers or branches for paths its form never takes. Each thread loads
//    its K chunks (strided slots, row_layout.h: coalesced) of x and the
//    residual once, keeps them in registers through the reduction and writes
//    from them: one pass over device memory. Blocks walk their rows
//    software-pipelined (the next row's loads issued before this row is
//    reduced); for big launches the grid is what the GPU holds at once, so
//    every thread keeps two rows' loads in flight. The weight is loaded once
//    per thread where registers allow (16-bit weights up to K = 2), otherwise
//    after each reduction; the gate with the row (K = 1) or before its
//    reduction, and its silu without branches (silu.h), or for bf16 gates at
//    K = 4 from a table in shared memory (silu_table.h). Stores are packed
//    conversions (cvt.rn.{bf16,f16}x2.f32); where the numerics round a sum or
//    product of two 16-bit operands to the activation dtype (the residual, the
//    HF-order weight product), packed 16-bit add / mul give the same bits with
//    one instruction per two elements (PackedAdd); NaNs are canonicalised after
//    a test on the encoded bits. Compiled for the dtype combinations models
//    use (RegisterCachedCombination). At K = 1 (decode-sized launches) a
//    row may be split over a thread-block cluster of CTAs on several SMs,
//    which exchange their partial sums through distributed shared memory
//    (ClusterExchange).
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
// (griddepcontrol.wait), before it touches memory (the register-cached kernel
// computes its layout, and with the fast path its first row's addresses,
// from the parameters before waiting; nothing in memory, not even the weight,
// is read before the wait, since an earlier kernel on the stream may be the
// one writing it). Launched with the
// programmatic-stream-serialization attribute (CudaLaunch::
// programmatic_dependency), the next node's launch overlaps this one's
// execution; launched without it, both instructions do nothing.

#include <cstdint>
#include <type_traits>
#include <utility>

#include "core/dtype.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/cuda/silu.h"
#include "kernels/cuda/silu_table.h"
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
  __device__ __forceinline__ void Set(int i, uint32_t bits) {
    if (kSize<D> == 4) {
      w[i] = bits;
    } else {
      const int shift = 16 * (i & 1);
      w[i / 2] = (w[i / 2] & ~(0xFFFFu << shift)) | (bits << shift);
    }
  }
  __device__ __forceinline__ void Zero() {
#pragma unroll
    for (int q = 0; q < kWords; ++q) w[q] = 0;
  }
};

__device__ __forceinline__ bool Aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

// A whole chunk at a 16-byte aligned address: the fast path's accesses, for
// rows a thread already knows to be full and aligned (RowOperands::full).
template <DType D>
__device__ __forceinline__ void LoadFullChunk(const char* p, Chunk<D>& c) {
  const uint4* v = reinterpret_cast<const uint4*>(p);
#pragma unroll
  for (int q = 0; q < Chunk<D>::kWords / 4; ++q) {
    const uint4 u = v[q];
    c.w[4 * q] = u.x;
    c.w[4 * q + 1] = u.y;
    c.w[4 * q + 2] = u.z;
    c.w[4 * q + 3] = u.w;
  }
}

template <DType D>
__device__ __forceinline__ void StoreFullChunk(char* p, const Chunk<D>& c) {
  uint4* v = reinterpret_cast<uint4*>(p);
#pragma unroll
  for (int q = 0; q < Chunk<D>::kWords / 4; ++q) {
    v[q] =
        make_uint4(c.w[4 * q], c.w[4 * q + 1], c.w[4 * q + 2], c.w[4 * q + 3]);
  }
}

// Loads elements [0, count) of the chunk at `p` (count <= 8; none if <= 0).
template <DType D>
__device__ __forceinline__ void LoadChunk(const char* p, int count,
                                          Chunk<D>& c) {
  if (count == kChunk && Aligned16(p)) {
    LoadFullChunk<D>(p, c);
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

// Stores elements [0, count) of chunk `c` at `p`.
template <DType D>
__device__ __forceinline__ void StoreChunk(char* p, int count,
                                           const Chunk<D>& c) {
  if (count == kChunk && Aligned16(p)) {
    StoreFullChunk<D>(p, c);
    return;
  }
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    if (i < count) StoreBits<D>(p + i * kSize<D>, c.Bits(i));
  }
}

// --- operands staged in shared memory (kStagedForm) -------------------------

// Copies the 16 bytes at `src` (16-byte aligned, device memory) to `dst` in
// shared memory without holding them in registers: cp.async, which completes
// at the next WaitForStaged (a plain copy before sm_80).
__device__ __forceinline__ void StageAsync16(uint4* dst, const char* src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned to = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(to), "l"(src)
               : "memory");
#else
  *dst = *reinterpret_cast<const uint4*>(src);
#endif
}

// Waits until every StageAsync16 of this thread has landed (they are then
// visible to this thread, which is the only one that reads them).
__device__ __forceinline__ void WaitForStaged() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;" ::: "memory");
#endif
}

// The dynamic shared memory this block was launched with.
__device__ __forceinline__ uint32_t DynamicSharedBytes() {
  uint32_t bytes;
  asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(bytes));
  return bytes;
}

// Two float32 values rounded to nearest even into one word of 16-bit elements
// (`lo` in the low half), by one packed conversion. Bit for bit
// numerics::Encode for every non-NaN value; a NaN becomes some NaN.
template <DType D>
__device__ __forceinline__ uint32_t PackPair(float lo, float hi) {
  uint32_t word;
  if (D == DType::kBF16) {
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(word) : "f"(hi), "f"(lo));
  } else {
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(word) : "f"(hi), "f"(lo));
  }
  return word;
}

// Packed 16-bit arithmetic, one rounding: R_D(a + b) and R_D(a * b) for
// each half of two words of D elements (16-bit D). Where the shared numerics
// compute such a result in float32 and round it to D, these give the same
// bits: a product of two 16-bit values is exact in float32 (at most 22
// significant bits, in range), so rounding it once is all either does; for a
// sum, float32 carries more than 2p + 1 bits for p-bit operands (p = 8 for
// bf16, 11 for f16), and rounding to float32 first then to D equals rounding
// to D once (double rounding is innocuous at that precision, Figueroa 1995).
// A NaN result is some NaN (CanonicalizeNans makes it the stored one).
// packed_arithmetic_test checks both against the float32 path for every pair of
// bf16 and of f16 values.
template <DType D>
__device__ __forceinline__ uint32_t PackedAdd(uint32_t a, uint32_t b) {
  uint32_t r;
  if (D == DType::kBF16) {
    asm("add.rn.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  } else {
    asm("add.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  }
  return r;
}
template <DType D>
__device__ __forceinline__ uint32_t PackedMul(uint32_t a, uint32_t b) {
  uint32_t r;
  if (D == DType::kBF16) {
    asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  } else {
    asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  }
  return r;
}

// numerics::EncodeOutput's NaN rule for a chunk of encoded values: every NaN
// becomes the canonical one. For 16-bit types the test is integer arithmetic
// on two elements at once: |h| > the infinity's bits exactly when
// |h| + (0x7FFF - infinity) carries into bit 15, which no half can carry out
// of. So about one instruction per element when nothing is a NaN.
template <DType D>
__device__ __forceinline__ void CanonicalizeNans(Chunk<D>& c) {
  constexpr uint32_t kInfinity = D == DType::kBF16 ? 0x7F80u : 0x7C00u;
  constexpr uint32_t kBelowCarry = (0x7FFFu - kInfinity) * 0x10001u;
  uint32_t carries = 0;
  if (kSize<D> == 4) {
#pragma unroll
    for (int i = 0; i < kChunk; ++i) {
      carries |= (c.w[i] & 0x7FFFFFFFu) > 0x7F800000u ? 1u : 0u;
    }
    if (carries == 0) return;
  } else {
#pragma unroll
    for (int q = 0; q < Chunk<D>::kWords; ++q) {
      carries |= (c.w[q] & 0x7FFF7FFFu) + kBelowCarry;
    }
    if ((carries & 0x80008000u) == 0) return;
  }
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    const uint32_t bits = c.Bits(i);
    const uint32_t magnitude = bits & (kSize<D> == 4 ? 0x7FFFFFFFu : 0x7FFFu);
    const uint32_t infinity = kSize<D> == 4 ? 0x7F800000u : kInfinity;
    if (magnitude > infinity) {
      c.Set(i, numerics::EncodeOutput<D>(FloatFromBits(0x7FC00000u)));
    }
  }
}

// numerics::EncodeOutput of 8 values into a chunk: packed conversions, then
// the NaN rule on the encoded bits.
template <DType D>
__device__ __forceinline__ void EncodeOutputChunk(const float f[kChunk],
                                                  Chunk<D>& c) {
  if (kSize<D> == 4) {
#pragma unroll
    for (int i = 0; i < kChunk; ++i) c.w[i] = FloatBits(f[i]);
  } else {
#pragma unroll
    for (int q = 0; q < kChunk / 2; ++q) {
      c.w[q] = PackPair<D>(f[2 * q], f[2 * q + 1]);
    }
  }
  CanonicalizeNans<D>(c);
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

// Completes the row's pairwise tree from each thread's K slot sums
// (row_layout.h): for each slot q, an xor butterfly within the warp (rows of
// <= 32 threads are aligned groups of lanes), then, for rows of several warps,
// across the row's warps through shared memory (each warp's sum is an aligned
// subtree too), gives the subtree of the row's G chunks of slot q; the K
// slots' subtrees are adjacent and aligned, and SubtreeSum completes the
// tree. Every thread of the block must call it (block-uniform `g`, a power of
// two); each returns its row's total.
//
// Three schedules of that same tree; which one runs changes speed, never
// bits:
//  - RowTotalForLatency (K == 1: the plan's choice for decode-sized launches,
//    and the streaming kernel): butterflies unrolled over the 5 possible
//    offsets (uniform branches), every lane reading a warp sum (no
//    broadcast), and one barrier per row: consecutive rows use alternate
//    halves of `warp_sums` (2 * K * 32 values, `parity`), so a row's writes
//    never meet the previous row's reads. A 256-node decode chain of
//    1 x 4096 bf16 norms: 1.57 us a node, against 1.82 with the other
//    schedule (H200).
//  - RowTotalPerSlot (K > 1): one butterfly per slot in loops, lanes past
//    the row's warps adding zeros, a broadcast from lane 0 and a second
//    barrier. With the latency schedule the same kernel took 190 us instead
//    of 159 for 32768 x 4096 bf16 rows (H200; not explained: registers and
//    spills are the same, the SASS was not compared).
//  - RowTotalForThroughput (K > 1, forms with registers to spare): the
//    per-slot schedule as a reduce-scatter (ScatterLevels), about half the
//    shuffles and additions; 8-12% faster prefill kernels (H200).
template <int K>
__device__ __forceinline__ double RowTotalForLatency(double (&sums)[K], int g,
                                                     int parity,
                                                     double* warp_sums) {
#pragma unroll
  for (int off = 1; off < 32; off *= 2) {
    if (off < g) {
#pragma unroll
      for (int q = 0; q < K; ++q) {
        sums[q] = sums[q] + __shfl_xor_sync(0xFFFFFFFFu, sums[q], off);
      }
    }
  }
  if (g > 32) {
    double* half = warp_sums + parity * (K * 32);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int warps = g / 32;  // per row, a power of two
    if (lane == 0) {
#pragma unroll
      for (int q = 0; q < K; ++q) half[q * 32 + warp] = sums[q];
    }
    __syncthreads();
    // Lane l takes the sum of the row's warp l mod `warps`: every aligned
    // group of `warps` lanes holds the row's warp sums in order, so the
    // butterfly leaves the total in every lane (no broadcast needed).
    const int from = (warp & ~(warps - 1)) + (lane & (warps - 1));
#pragma unroll
    for (int q = 0; q < K; ++q) {
      double s = half[q * 32 + from];
#pragma unroll
      for (int off = 1; off < 32; off *= 2) {
        if (off < warps) s = s + __shfl_xor_sync(0xFFFFFFFFu, s, off);
      }
      sums[q] = s;
    }
  }
  return cuda_layout::SubtreeSum<K>(sums);
}

template <int K>
__device__ __forceinline__ double RowTotalPerSlot(double (&sums)[K], int g,
                                                  double* warp_sums) {
  const int in_warp = g < 32 ? g : 32;
  for (int off = 1; off < in_warp; off *= 2) {
#pragma unroll
    for (int q = 0; q < K; ++q) {
      sums[q] = sums[q] + __shfl_xor_sync(0xFFFFFFFFu, sums[q], off);
    }
  }
  if (g > 32) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int warps = g / 32;  // per row
    if (lane == 0) {
#pragma unroll
      for (int q = 0; q < K; ++q) warp_sums[q * 32 + warp] = sums[q];
    }
    __syncthreads();
    const int first = warp & ~(warps - 1);  // the row's first warp
#pragma unroll
    for (int q = 0; q < K; ++q) {
      double s = lane < warps ? warp_sums[q * 32 + first + lane] : 0.0;
      for (int off = 1; off < warps; off *= 2) {
        s = s + __shfl_xor_sync(0xFFFFFFFFu, s, off);
      }
      sums[q] = __shfl_sync(0xFFFFFFFFu, s, 0);
    }
    __syncthreads();  // warp_sums is reused by the block's next rows
  }
  return cuda_layout::SubtreeSum<K>(sums);
}

// Reduce-scatter over the first log2 K in-warp offsets: at offset `off` a
// lane holding M slot sums keeps half of them (the lower half if its `off`
// bit is 0) and adds its partner's copy of that half: M / 2 shuffled values
// per level instead of M. After the log2 K levels lane bits b_0 (offset 1),
// b_1, ... name the one slot a lane holds: sum_i b_i * (K >> (i + 1)).
template <int M>
__device__ __forceinline__ void ScatterLevels(double* s, int off, int lane) {
  if constexpr (M > 1) {
    const bool upper = (lane & off) != 0;
#pragma unroll
    for (int j = 0; j < M / 2; ++j) {
      const double send = upper ? s[j] : s[j + M / 2];
      const double keep = upper ? s[j + M / 2] : s[j];
      s[j] = keep + __shfl_xor_sync(0xFFFFFFFFu, send, off);
    }
    ScatterLevels<M / 2>(s, off * 2, lane);
  }
}

// The lane (relative to an aligned group of K) holding slot q after the
// scatter: bit i of it is bit (log2 K - 1 - i) of q.
template <int K>
__host__ __device__ constexpr int HolderOfSlot(int q) {
  int lane = 0, i = 0;
  for (int bit = K / 2; bit > 0; bit /= 2, ++i) {
    if (q & bit) lane |= 1 << i;
  }
  return lane;
}

template <int K>
__device__ __forceinline__ double RowTotalForThroughput(double (&sums)[K],
                                                        int g,
                                                        double* warp_sums) {
  if (g < K) return RowTotalPerSlot<K>(sums, g, warp_sums);
  const int lane = threadIdx.x % 32;
  const int in_warp = g < 32 ? g : 32;
  ScatterLevels<K>(sums, 1, lane);
  double s = sums[0];
  for (int off = K; off < in_warp; off *= 2) {
    s = s + __shfl_xor_sync(0xFFFFFFFFu, s, off);
  }
  double total[K];
  if (g <= 32) {
    const int row_lane = lane & ~(in_warp - 1);
#pragma unroll
    for (int q = 0; q < K; ++q) {
      total[q] = __shfl_sync(0xFFFFFFFFu, s, row_lane + HolderOfSlot<K>(q));
    }
    return cuda_layout::SubtreeSum<K>(total);
  }
  const int warp = threadIdx.x / 32;
  const int warps = g / 32;  // per row, a power of two, <= 16
  const int first = warp & ~(warps - 1);
  if (lane < K) {
    int slot = 0;
#pragma unroll
    for (int q = 0; q < K; ++q) {
      if (HolderOfSlot<K>(q) == lane) slot = q;
    }
    warp_sums[slot * 32 + warp] = s;
  }
  __syncthreads();
  // Lane l adds warp (l mod warps) of slot (l / warps) (+ per_pass in the
  // second pass, needed only when K * warps > 32).
  const int per_pass = 32 / warps;
  const int log2_warps = 31 - __clz(warps);
#pragma unroll
  for (int pass = 0; pass < 2; ++pass) {
    if (pass * per_pass < K) {
      const int q = pass * per_pass + (lane >> log2_warps);
      double v = q < K ? warp_sums[q * 32 + first + (lane & (warps - 1))] : 0.0;
      for (int off = 1; off < warps; off *= 2) {
        v = v + __shfl_xor_sync(0xFFFFFFFFu, v, off);
      }
#pragma unroll
      for (int qq = 0; qq < K; ++qq) {
        const int local = qq - pass * per_pass;
        if (local >= 0 && local < per_pass) {
          total[qq] = __shfl_sync(0xFFFFFFFFu, v, local * warps);
        }
      }
    }
  }
  __syncthreads();  // warp_sums is reused by the block's next rows
  return cuda_layout::SubtreeSum<K>(total);
}

template <int K, bool kScatter = true>
__device__ __forceinline__ double RowTotal(double (&sums)[K], int g, int parity,
                                           double* warp_sums) {
  if constexpr (K == 1) {
    return RowTotalForLatency<K>(sums, g, parity, warp_sums);
  } else if constexpr (kScatter) {
    return RowTotalForThroughput<K>(sums, g, warp_sums);
  } else {
    return RowTotalPerSlot<K>(sums, g, warp_sums);
  }
}

// --- rows split over a thread-block cluster (decode)
// -------------------------------------

// A decode-sized launch (a few rows) leaves most SMs idle while one SM does a
// whole row: on the H200 a 256-node decode chain of 1 x 4096 bf16 norms took
// 1.59 us a node with the row in one CTA of 512 threads, 1.19 with it split
// over 4 CTAs on 4 SMs and the exchange of their sums left out (wrong
// results, the cost of the work alone). So the launch plan (kernels.cu) may
// split each row of the K = 1 kernel over a cluster of CS CTAs: CTA rank c owns
// the row's chunks [c G / CS, (c + 1) G / CS), an aligned subtree of the
// pairwise tree, which it completes itself (RowTotalForLatency) and pushes
// into slot c of every CTA of the cluster (st.async into distributed shared
// memory, each CTA's mbarrier counting the bytes); each CTA then adds the
// slots pairwise in rank order (SubtreeSum over kMaxCluster slots, the unused
// ones exact zeros), which is the tree's top: the same bits as one CTA. The
// exchange took ~0.1 us a node against ~0.5 for a cluster barrier
// (barrier.cluster) per row. Every CTA of a cluster walks the same rows;
// consecutive rows use alternate slots and mbarriers (`parity`). A CTA sends
// row r + 1's sum only after the barrier of its row r + 1 reduction
// (RowTotalForLatency has one: the plan gives clustered CTAs >= 64 threads),
// so after all its threads read row r's slots; a CTA reaches row r + 2, whose
// sum goes into row r's slots, only after receiving every CTA's row r + 1 sum.
// So no slot is overwritten before every CTA has read it. (A sum may arrive
// before its receiver posts the bytes to expect: the mbarrier's transaction
// count may go below zero meanwhile.) No CTA exits while another may still
// write its shared memory: each receives all sums of its rows before its last
// row's outputs.
constexpr int kMaxCluster = 8;

struct ClusterExchange {
  unsigned long long arrived[2];  // mbarriers, one per row parity
  double slots[2][kMaxCluster];
};

// CTAs in this CTA's cluster, and this CTA's rank in it (1 and 0 without a
// cluster, or before sm_90, where the plan never asks for one).
__device__ __forceinline__ int ClusterSize() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t n;
  asm("mov.u32 %0, %%cluster_nctarank;" : "=r"(n));
  return static_cast<int>(n);
#else
  return 1;
#endif
}
__device__ __forceinline__ int ClusterRank() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t r;
  asm("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return static_cast<int>(r);
#else
  return 0;
#endif
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// The address of the same shared variable in CTA `rank` of the cluster.
__device__ __forceinline__ uint32_t InClusterRank(uint32_t address, int rank) {
  uint32_t mapped;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;"
               : "=r"(mapped)
               : "r"(address), "r"(rank));
  return mapped;
}
#endif

// Before the first row (and before waiting for earlier kernels: with
// programmatic dependent launch this overlaps them): each CTA's mbarriers
// initialised (one arrival a phase: its own thread 0's, which also sets the
// bytes to expect), made visible to the cluster before any CTA sends.
__device__ __forceinline__ void InitClusterExchange(ClusterExchange& ex) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (threadIdx.x == 0) {
    for (int i = 0; i < 2; ++i) {
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;"
                   :
                   : "r"(SharedAddress(&ex.arrived[i]))
                   : "memory");
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
  asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
#endif
}

// The row's total from this CTA's part (every thread of the row holds it):
// see above. `phases` holds the phase bit of each mbarrier to wait for.
__device__ __forceinline__ double ClusterRowTotal(double part, int cluster,
                                                  int rank, int parity,
                                                  uint32_t& phases,
                                                  ClusterExchange& ex) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const uint32_t arrived = SharedAddress(&ex.arrived[parity]);
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;"
                 :
                 : "r"(arrived), "r"(cluster * static_cast<int>(sizeof(double)))
                 : "memory");
  }
  if (static_cast<int>(threadIdx.x) < cluster) {
    const int to = static_cast<int>(threadIdx.x);
    asm volatile(
        "st.async.shared::cluster.mbarrier::complete_tx::bytes.b64 [%0], %1, "
        "[%2];"
        :
        : "r"(InClusterRank(SharedAddress(&ex.slots[parity][rank]), to)),
          "l"(__double_as_longlong(part)), "r"(InClusterRank(arrived, to))
        : "memory");
  }
  const uint32_t phase = (phases >> parity) & 1u;
  uint32_t done = 0;
  do {
    asm volatile(
        "{ .reg .pred ready; mbarrier.try_wait.parity.shared::cta.b64 ready, "
        "[%1], %2; selp.u32 %0, 1, 0, ready; }"
        : "=r"(done)
        : "r"(arrived), "r"(phase)
        : "memory");
  } while (done == 0);
  phases ^= 1u << parity;
  double sums[kMaxCluster];
#pragma unroll
  for (int c = 0; c < kMaxCluster; ++c) {
    sums[c] = c < cluster ? ex.slots[parity][c] : 0.0;
  }
  return cuda_layout::SubtreeSum<kMaxCluster>(sums);
#else
  return part;
#endif
}

// --- 1 / rms on the critical path (decode)

// numerics::InvRmsOfMean's bits, with rsqrt in place of its float64 square
// root and division wherever rounding to float32 cannot tell the two apart
// (numerics::RoundsLikeNeighbours: all but about 4 in a million means), the
// exact chain elsewhere. On the H200 a prototype's 256-node decode chain of
// split rows went from 1.29 to 1.18 us a node (benchmarks/RESULTS.md, sixth
// session); inv_rms_test checks the bits against the CPU's exact chain on
// means next to float32 rounding midpoints.
__device__ __forceinline__ float InvRmsOfMeanForLatency(double mean,
                                                        float eps) {
  const double y = rsqrt(mean + static_cast<double>(eps));
  if (numerics::RoundsLikeNeighbours(y)) return static_cast<float>(y);
  return numerics::InvRmsOfMean(mean, eps);
}

// --- the register-cached kernel
// -------------------------------------------------

// The variant of a call (kernels/rms_norm_params.h) as a template argument of
// the register-cached kernel: each form is its own kernel, so a thread holds
// no registers and takes no branches for the paths its form never takes.
constexpr int kResidualForm = 1;  // fused residual add
constexpr int kHfForm = 2;        // RoundingOrder::kHuggingFace
constexpr int kScaleForm = 4;     // NormWeight::kScale (the f32 1 + w)
constexpr int kGatedForm = 8;     // silu(gate)
// Not a variant of the call but of the launch: K = 1 with each row split over
// a thread-block cluster (ClusterExchange). Its own kernels, so that the
// kernels that do not split compile none of it: with the split decided at
// run time, they were 2-4% slower in decode chains (H200,
// benchmarks/RESULTS.md).
constexpr int kSplitForm = 16;
// Also of the launch: a gated K = 1 kernel with twice the registers (128 a
// thread, so blocks of at most kWideMaxThreads), for decode launches whose
// blocks all fit on the GPU at once, where it runs with programmatic
// dependent launch (kernels.cu, WideGatedLaunch): a 256-node chain of gated
// norms over 64 tokens x 32 heads of 128 took 2.14 us a node with the usual
// kernel, 1.84 with this one (H200, benchmarks/RESULTS.md). Launches that
// fill the GPU run the usual kernel (96 registers cost the gated K = 1 form
// 368.9 -> 507.8 us at 32768 x 4096), and so do those of at most one row
// group an SM, spread (kernels.cu, SpreadLaunch), which beat this form.
constexpr int kWideForm = 32;
constexpr int kWideMaxThreads = 512;
// Also of the launch: rows of C < P chunks (row_layout.h) whose length is a
// multiple of kChunk (hidden 1536, 2560, 5120, ...), whose threads' upper
// slots may lie past the row's end. The forms with the whole-chunk fast path
// at K = 4 (no residual) otherwise take the general path for every chunk of
// such rows; with this form the fast path checks those slots for a chunk
// (bf16 rms at 32768 x 1536 on the H200: 72.7 -> 58.8 us). Its own kernels:
// the check compiled into every kernel cost the rows of P chunks 1-4.5%
// (benchmarks/results/h200-2026-11-30e). Not for the gated form with an f32
// weight (ptxas: 48 more bytes of spills).
constexpr int kEmptySlotsForm = 64;
// Also of the launch: K = 4 forms with a residual (not gated), 16-bit
// activations, for rows of 256 threads or more whose slots all hold a chunk
// (rows of 1024 or 2048 chunks: kernels.cu, StagedFunction), in launches
// whose blocks walk several row groups: each thread's operands of
// the block's next row (x and the residual) are copied into shared memory by
// cp.async while the current row is reduced and written, instead of being
// held in registers (the K = 4 residual forms have no room for that: they
// spilled and ran slower with the register pipeline) or not loaded until the
// row is done. The zero-centred fused add on the H200, bf16, us a launch
// without / with (benchmarks/RESULTS.md, twelfth session): 1024 x 16384 45.2
// -> 38.6, 4096 x 16384 157.8 -> 141.3, 32768 x 16384 1195 -> 1112, 4096 x
// 8192 78.3 -> 75.2 (f16 alike; the HF-order fused add 1.03-1.07x in the
// prototype); at rows of 128 threads (hidden up to 4096) the prototype ran
// 0.98-0.99x, so not there. Its own kernels, with one buffer of
// StagedSharedBytes a block.
constexpr int kStagedForm = 128;
constexpr int kStagedMinRowThreads = 256;
// Also of the launch: gated K = 4 forms with bf16 activations (and gates):
// silu from a table of 8192 results in shared memory (silu_table.h) instead
// of about 30 instructions an element, for gates of magnitude in [2^-24,
// 2^8); each block copies the 32 KiB table once, by cp.async overlapped with
// its first row's loads (H200, gated bf16 prefill 1.06-1.18x; ncu at 32768 x
// 4096: 52.7 -> 37.8 instructions an element). Its own kernels, so that the
// others (and SetSiluTableRows(false)) stay as they were.
constexpr int kSiluTableForm = 256;
constexpr int kLastForm = kResidualForm | kHfForm | kScaleForm | kGatedForm |
                          kSplitForm | kWideForm | kEmptySlotsForm |
                          kStagedForm | kSiluTableForm;

// The dynamic shared memory a block of `block_threads` threads of a staged
// kernel (kStagedForm) needs: a chunk of x and one of the residual for each
// of its threads' 4 slots (16-bit activations: 16 bytes a chunk).
__host__ __device__ constexpr uint32_t StagedSharedBytes(
    int64_t block_threads) {
  return static_cast<uint32_t>(block_threads) * 4 * 2 * 16;
}

// The form of `p`. The rounding order only matters with a residual or a
// multiplied weight, so it is left out otherwise (fewer kernels).
inline int FormOf(const RmsNormParams& p) {
  const bool scale = p.weight_kind == NormWeight::kScale;
  const bool residual = p.residual != nullptr;
  int form = (residual ? kResidualForm : 0) | (scale ? kScaleForm : 0) |
             (p.gate != nullptr ? kGatedForm : 0);
  if (p.order == RoundingOrder::kHuggingFace && (residual || !scale)) {
    form |= kHfForm;
  }
  return form;
}

// Whether a form is one FormOf gives for weights of dtype W (the scale is
// f32 and never gated; valid parameters have nothing else), with K chunks per
// thread (only K = 1 splits rows or has a wide form, and only gated forms are
// wide; kEmptySlotsForm only at K = 4, for the forms with the fast path;
// kStagedForm only at K = 4 with a residual and no gate, and for 16-bit
// activations; kSiluTableForm only at K = 4 and gated, and for bf16
// activations: RegisterKernelIfCompiled).
constexpr bool FormIsCompiled(DType w, int k, int form) {
  if ((form & kSplitForm) != 0 && k != 1) return false;
  if ((form & kWideForm) != 0 && (k != 1 || (form & kGatedForm) == 0)) {
    return false;
  }
  if ((form & kEmptySlotsForm) != 0 &&
      (k != 4 || (form & (kResidualForm | kSplitForm | kWideForm)) != 0 ||
       ((form & kGatedForm) != 0 && w == DType::kF32))) {
    return false;
  }
  if ((form & kStagedForm) != 0 &&
      (k != 4 || (form & kResidualForm) == 0 ||
       (form & (kGatedForm | kSplitForm | kWideForm | kEmptySlotsForm)) != 0)) {
    return false;
  }
  if ((form & kSiluTableForm) != 0 &&
      (k != 4 || (form & kGatedForm) == 0 ||
       (form & (kSplitForm | kWideForm | kStagedForm)) != 0)) {
    return false;
  }
  const bool scale = (form & kScaleForm) != 0;
  if (!scale) return true;
  return w == DType::kF32 && (form & kGatedForm) == 0 &&
         ((form & kResidualForm) != 0 || (form & kHfForm) == 0);
}

// Chunk `i`'s norm input, element e (numerics::NormInput): x, or with a
// residual R_X(x + residual) (HF order; `rc` then holds those rounded bits)
// or x + residual (engine order; `rc` holds the residual as loaded).
template <DType X, int kForm>
__device__ __forceinline__ float InputValue(const Chunk<X>& xc,
                                            const Chunk<X>& rc, int e) {
  if ((kForm & kResidualForm) == 0) return xc.Value(e);
  if ((kForm & kHfForm) != 0) return rc.Value(e);
  return xc.Value(e) + rc.Value(e);
}

// The bf16 silu table (silu_table.h), which the kSiluTableForm kernels copy
// into each block's shared memory.
__device__ __align__(16) const uint32_t kSiluBf16Table[silu_table::kEntries] = {
#include "kernels/cuda/silu_bf16_table.inl"
};

// silu of a bf16 gate chunk's elements from `table` (shared memory):
// every element's entry is read (entry 0 for those the table lacks), and only
// a chunk with an element outside the table computes (silu.h) and selects.
// One branch a chunk, not one an element: with a branch each the lookups
// could not overlap (H200, gated bf16 4096 x 4096: 41.1 -> 46.7 us).
__device__ __forceinline__ void TableSilus(const Chunk<DType::kBF16>& gc,
                                           const float* table,
                                           float silu[kChunk]) {
  uint32_t outside = 0;
#pragma unroll
  for (int e = 0; e < kChunk; ++e) {
    const uint32_t index = silu_table::IndexOfBf16(gc.Bits(e));
    const bool held = index < silu_table::kEntries;
    outside |= static_cast<uint32_t>(!held) << e;
    silu[e] = table[held ? index : 0];
  }
  if (outside == 0) return;
#pragma unroll
  for (int e = 0; e < kChunk; ++e) {
    const float computed = SiluWithoutBranches(gc.Value(e));
    if ((outside >> e) & 1) silu[e] = computed;
  }
}

// One row's operands as a thread of the register-cached kernel holds them:
// its K chunks of x, the residual and (K == 1) the gate, and how many
// elements of each chunk exist (0 past the row's end or for a thread past
// the last row). `full`: every chunk of the thread is whole or past the
// row's end (only slots that may lie past it are checked) and every row
// pointer it uses (x, residual, gate, out, the weight) is 16-byte aligned,
// so it reads and writes whole chunks without a per-element check (the fast
// path; the usual case, and a thread that is not takes the general path on
// its own: neither holds a shuffle or a barrier).
template <DType X, int K>
struct RowOperands {
  bool full;
  int count[K];
  Chunk<X> xc[K], rc[K], gc[K];
};

// Registers: 16-bit activations with K <= 2 at most 64 a thread (an SM then
// holds 32 warps or more, enough loads in flight to cover memory latency);
// 64 bytes of activations a thread or more (K = 4 of 16-bit, K = 2 and 4 of
// f32) up to 128 (16 warps, each with twice the loads in flight), where 64
// would spill.
// The wide forms (kWideForm): 128 registers in blocks of up to
// kWideMaxThreads.
constexpr int RegisterKernelMaxThreads(int k, int form) {
  return (form & kWideForm) != 0 ? kWideMaxThreads
                                 : cuda_layout::MaxRegisterThreads(k);
}
constexpr int RegisterKernelMinBlocks(int k, int x_bytes, int form) {
  return k * x_bytes >= 8 || (form & kWideForm) != 0
             ? 1
             : 65536 / (cuda_layout::MaxRegisterThreads(k) * 64);
}

// Each block walks its rows (one row group at a time, blockDim.x / G rows)
// with a grid stride, software-pipelined where registers allow (kPipeline):
// the loads of its next row group are issued before the current one is
// reduced and written, so each thread keeps two rows' loads in flight. The
// launch plan makes the grid about as large as the GPU holds at once for big
// launches (kernels.cu), so blocks are persistent and the pipeline runs; for
// small ones every block has one row group.
template <DType X, DType W, int K, int kForm>
__global__ void __launch_bounds__(RegisterKernelMaxThreads(K, kForm),
                                  RegisterKernelMinBlocks(K, kSize<X>, kForm))
    RmsNormRegisterKernel(const RmsNormParams p) {
  constexpr DType O = X;
  constexpr bool kResidual = (kForm & kResidualForm) != 0;
  constexpr bool kHf = (kForm & kHfForm) != 0;
  constexpr bool kScale = (kForm & kScaleForm) != 0;
  constexpr bool kGated = (kForm & kGatedForm) != 0;
  // The weight (the same chunks for every row of a thread) is loaded once,
  // before the rows, when its registers allow; otherwise after each row's
  // reduction, two chunks at a time. The gate comes with the row's other
  // operands at K = 1; for K > 1, where the pipeline leaves it no registers,
  // each row's is loaded before the row is reduced, so that its latency
  // overlaps the reduction (H200, gated bf16 4096 x 16384: 255.1 -> 236.3 us;
  // 32768 x 4096: 496.1 -> 487.9; against loading it with the weight).
  constexpr bool kEarlyWeight = K * kSize<W> <= 4;
  constexpr bool kEarlyGate = K == 1;
  // Three choices that trade registers for instructions a row (A/B on the
  // H200, 32768 x 4096 and 256-node decode chains of 1 x 4096, bf16, one
  // binary per variant in one run, benchmarks/RESULTS.md):
  //  - kLean: the reduce-scatter schedule of the reduction (RowTotal);
  //  - kFastPath: whole, aligned rows without per-chunk checks
  //    (RowOperands::full), planned before the wait for the kernels this one
  //    depends on (RowPlan);
  //  - kPipeline: the next row's loads issued before this row is reduced.
  // At K = 4 (prefill, 128 registers) the forms with a residual hold two
  // operands a chunk: either of the first two made them spill (ptxas: 4 to
  // 200 bytes) and run slower, and without the pipeline they ran 1-1.5%
  // faster (and spill nothing), so they take none of the three; the gated
  // form spills 68 bytes with the first two and still runs 6% faster (502
  // against 536 us); the rms and zero-centred forms gain 8% and 12%. f32
  // activations at K = 4 (rows of 8193-16384 elements) hold twice the
  // registers a chunk: with the pipeline the forms without a residual spill
  // 108 bytes (ptxas), and still ran 3-10% faster than without it (rms f32
  // x 16384: 1024 rows 60.9 -> 55.1 us, 32768 rows 1628 -> 1585;
  // benchmarks/results/h200-2026-11-30f, calls 3 and 7). At K = 1 (decode) the
  // fast path shortens a residual form's chain (a node of the fused add 1.745
  // -> 1.555 us, zero-centred fused add 1.763 -> 1.648) but lengthens the
  // others' (rms 1.579 -> 1.610). K = 2 (64 registers): both made more forms
  // spill, untimed, so it keeps the previous kernel; the f32 K = 2 forms
  // without a residual (128 registers) spilled nothing with the fast path but
  // ran 3-8% slower at 4096 x 2048-8192 (H200,
  // benchmarks/results/h200-2026-11-30e).
  //  - kStaged (kStagedForm, K = 4 with a residual): the next row through
  //    shared memory instead (its own kernels; the fast path, which the
  //    staged copies need, only there).
  constexpr bool kStaged = (kForm & kStagedForm) != 0;
  static_assert(!kStaged || (K == 4 && kResidual && kSize<X> == 2));
  constexpr bool kLean = K == 4 && !kResidual;
  constexpr bool kFastPath = kLean || kStaged || (K == 1 && kResidual);
  constexpr bool kPipeline = !(K == 4 && kResidual);
  AllowDependentLaunch();
  // The layout (row_layout.h): G threads per row, each owning K chunks
  // (slot i of a thread is chunk i * G + its lane in the row: a warp's
  // accesses to one slot are contiguous); blockDim.x / G rows per block. G is
  // a power of two, so shifts and masks instead of divisions; all of it from
  // the sizes alone, before waiting for the kernels this one depends on (with
  // programmatic dependent launch, while they finish). The split kernels
  // (kSplitForm, K = 1) hold part of a row per block, split over a cluster of
  // G / blockDim.x CTAs (ClusterExchange), one row per CTA. Told by the sizes
  // there too (a block of a whole row is not split): with the split a
  // compile-time constant, the 256-norm decode stack of split rows was 3.5%
  // slower on the H200 (355.0 against 342.8 us a step at batch 1, same run;
  // benchmarks/results/h200-2026-11-30b).
  const int64_t g64 = cuda_layout::PaddedChunks(p.cols) / K;
  const bool split = (kForm & kSplitForm) != 0 && blockDim.x < g64;
  const int log2_row = cuda_layout::Log2OfPowerOfTwo(g64);
  const int log2_cluster =
      split ? log2_row - cuda_layout::Log2OfPowerOfTwo(blockDim.x) : 0;
  const int cluster = 1 << log2_cluster;
  // A split row launched without its cluster (or with another) cannot be
  // computed: an error rather than wrong sums or a wait that never ends.
  if (split && ClusterSize() != cluster) __trap();
  const int rank = split ? ClusterRank() : 0;
  const int g =
      static_cast<int>(g64 >> log2_cluster);  // the row's threads here
  const int log2_g = log2_row - log2_cluster;
  const int rows_per_block = static_cast<int>(blockDim.x >> log2_g);
  const int lane_in_row = rank * g + (threadIdx.x & (g - 1));
  const int row_in_block = threadIdx.x >> log2_g;
  auto chunk = [&](int i) -> int64_t {
    return static_cast<int64_t>(i) * g64 + lane_in_row;
  };
  // Element offsets: of this thread's first chunk in a row, and between its
  // slots.
  const int64_t lane_offset = static_cast<int64_t>(lane_in_row) * kChunk;
  const int64_t slot_offset = g64 * kChunk;
  const char* weight = static_cast<const char*>(p.weight);
  // Whether every chunk of this thread is whole or past the row's end, and
  // the weight aligned: the row-independent part of RowOperands::full.
  // Without kEmptySlotsForm every slot must hold a whole chunk. With it (rows
  // of C < P chunks, cols a multiple of kChunk) a slot may lie past the
  // row's end, except those below kAlwaysPresent: the first K / 2 slots
  // cover the chunks below P / 2 < C.
  constexpr bool kAbsentSlots = (kForm & kEmptySlotsForm) != 0;
  constexpr int kAlwaysPresent = kAbsentSlots ? K / 2 : K;
  const bool whole_chunks = (chunk(K - 1) * kChunk + kChunk <= p.cols ||
                             (kAbsentSlots && p.cols % kChunk == 0)) &&
                            Aligned16(weight);
  // Whether slot i of a row needs its accesses: on the general path every
  // slot (its accesses check the count), as the code it was tuned with does;
  // on the fast path (rows that exist) those holding a chunk, known at
  // compile time for the low slots and told from the sizes for the others
  // (not from the row's counts: that would keep K more registers alive
  // through the pipeline, and K = 4 spilled).
  int slots_in_row = K;  // this thread's slots that hold a chunk of a row
  if (kAbsentSlots) {
    slots_in_row = 0;
#pragma unroll
    for (int i = 0; i < K; ++i) slots_in_row += chunk(i) * kChunk < p.cols;
  }
  auto accessed = [&](auto full, int i) {
    if constexpr (decltype(full)::value) {
      return i < kAlwaysPresent || i < slots_in_row;
    } else {
      return true;
    }
  };
  __shared__ double warp_sums[2 * K * 32];
  __shared__ ClusterExchange exchange;
  uint32_t exchange_phases = 0;
  // The loop bounds are the same for every thread of the block (and of the
  // cluster): all of them reach every shuffle and barrier.
  int64_t row0 =
      static_cast<int64_t>(blockIdx.x >> log2_cluster) * rows_per_block;
  const int64_t step =
      static_cast<int64_t>(gridDim.x >> log2_cluster) * rows_per_block;
  // A block of less than a row, not split (no plan makes one: a split plan
  // launched with the wrong kernel): an error rather than a loop that never
  // advances. Likewise a staged kernel launched without its buffer.
  if (rows_per_block == 0) __trap();
  if (kStaged && DynamicSharedBytes() < StagedSharedBytes(blockDim.x)) {
    __trap();
  }
  if (row0 >= p.rows) return;
  if (split) InitClusterExchange(exchange);
  // The silu table's shared memory (filled below, after the first row's
  // loads are issued, so that its copy overlaps them).
  constexpr bool kTable = (kForm & kSiluTableForm) != 0;
  static_assert(!kTable || (K == 4 && kGated && X == DType::kBF16));
  uint4* silu_table_words = nullptr;
  if constexpr (kTable) {
    __shared__ uint4 table[silu_table::kBytes / sizeof(uint4)];
    silu_table_words = table;
  }

  // This thread's first element of a row of `base` (row r of a tensor of
  // dtype D with row stride `stride`); slot i is at + i * slot_offset.
  auto lane_ptr = [&](auto dtype, const void* base, int64_t r,
                      int64_t stride) -> char* {
    constexpr DType D = decltype(dtype)::value;
    return const_cast<char*>(Row<D>(base, r, stride)) + lane_offset * kSize<D>;
  };
  using XTag = std::integral_constant<DType, X>;
  using OTag = std::integral_constant<DType, O>;

  // Where this thread's operands of the row group starting at row0 are, and
  // whether it takes the fast path: arithmetic on the parameters alone, so
  // the first row group's is done before waiting for the kernels this one
  // depends on, and only the loads follow the wait.
  struct RowPlan {
    const char *x, *res, *gate;
    bool full;
    int count[K];
  };
  auto plan = [&](int64_t row0) {
    RowPlan pl;
    const int64_t row = row0 + row_in_block;
    const bool active = row < p.rows;
    const int64_t r = active ? row : 0;
    pl.x = lane_ptr(XTag(), p.x, r, p.x_stride);
    pl.res =
        kResidual ? lane_ptr(XTag(), p.residual, r, p.residual_stride) : pl.x;
    pl.gate = kGated ? lane_ptr(XTag(), p.gate, r, p.gate_stride) : pl.x;
    pl.full = kFastPath && active && whole_chunks && Aligned16(pl.x) &&
              Aligned16(pl.res) && Aligned16(pl.gate) &&
              Aligned16(lane_ptr(OTag(), p.out, r, p.out_stride));
#pragma unroll
    for (int i = 0; i < K; ++i) {
      pl.count[i] = active ? ChunkCount(chunk(i), p.cols) : 0;
    }
    return pl;
  };
  // This thread's loads of a planned row group.
  auto issue = [&](const RowPlan& pl, RowOperands<X, K>& o) {
    o.full = pl.full;
    if (o.full) {
#pragma unroll
      for (int i = 0; i < K; ++i) {
        // kChunk or 0 (the fast path reads neither: accessed tells).
        o.count[i] = kAbsentSlots ? pl.count[i] : kChunk;
        if (!accessed(std::true_type(), i)) {
          // Zeros, as LoadChunk leaves an empty chunk: the tree's padding.
          o.xc[i].Zero();
          if (kResidual) o.rc[i].Zero();
          if (kGated && kEarlyGate) o.gc[i].Zero();
          continue;
        }
        const int64_t j = i * slot_offset * kSize<X>;
        LoadFullChunk<X>(pl.x + j, o.xc[i]);
        if (kResidual) LoadFullChunk<X>(pl.res + j, o.rc[i]);
        if (kGated && kEarlyGate) LoadFullChunk<X>(pl.gate + j, o.gc[i]);
      }
      return;
    }
#pragma unroll
    for (int i = 0; i < K; ++i) {
      o.count[i] = pl.count[i];
      const int64_t j = i * slot_offset * kSize<X>;
      LoadChunk<X>(pl.x + j, o.count[i], o.xc[i]);
      if (kResidual) LoadChunk<X>(pl.res + j, o.count[i], o.rc[i]);
      if (kGated && kEarlyGate) LoadChunk<X>(pl.gate + j, o.count[i], o.gc[i]);
    }
  };
  auto load = [&](int64_t row0, RowOperands<X, K>& o) { issue(plan(row0), o); };
  // kStaged: slot i of thread t's x chunk at staged[2 i][t], its residual
  // chunk at staged[2 i + 1][t] (a warp's accesses contiguous). Rows off the
  // fast path are not staged: read from device memory when they are due.
  extern __shared__ uint4 staged[];
  auto staged_chunk = [&](int i, int operand) -> uint4& {
    return staged[(2 * i + operand) * blockDim.x + threadIdx.x];
  };
  auto stage = [&](const RowPlan& pl) {
    if (!pl.full) return;
#pragma unroll
    for (int i = 0; i < K; ++i) {
      if (!accessed(std::true_type(), i)) continue;
      const int64_t j = i * slot_offset * kSize<X>;
      StageAsync16(&staged_chunk(i, 0), pl.x + j);
      StageAsync16(&staged_chunk(i, 1), pl.res + j);
    }
  };
  auto read_staged = [&](const RowPlan& pl, RowOperands<X, K>& o) {
    if (!pl.full) {
      issue(pl, o);
      return;
    }
    WaitForStaged();
    o.full = true;
#pragma unroll
    for (int i = 0; i < K; ++i) {
      o.count[i] = kChunk;
      if (!accessed(std::true_type(), i)) {
        o.xc[i].Zero();
        o.rc[i].Zero();
        continue;
      }
      LoadFullChunk<X>(reinterpret_cast<const char*>(&staged_chunk(i, 0)),
                       o.xc[i]);
      LoadFullChunk<X>(reinterpret_cast<const char*>(&staged_chunk(i, 1)),
                       o.rc[i]);
    }
  };

  // A chunk of `c` stored at `p`: whole (fast path) or the first `count`
  // elements.
  auto store = [&](auto full, auto dtype, char* ptr, int count, const auto& c) {
    constexpr DType D = decltype(dtype)::value;
    if constexpr (decltype(full)::value) {
      StoreFullChunk<D>(ptr, c);
    } else {
      StoreChunk<D>(ptr, count, c);
    }
  };
  auto load_chunk = [&](auto full, auto dtype, const char* ptr, int count,
                        auto& c) {
    constexpr DType D = decltype(dtype)::value;
    if constexpr (decltype(full)::value) {
      LoadFullChunk<D>(ptr, c);
    } else {
      LoadChunk<D>(ptr, count, c);
    }
  };

  // Without the fast path, planning first made the decode chain slower (rms
  // 1.579 -> 1.593 us a node): those kernels wait first.
  if (!kFastPath) WaitForPriorGrids();
  int weight_count[K];
#pragma unroll
  for (int i = 0; i < K; ++i) weight_count[i] = ChunkCount(chunk(i), p.cols);
  const RowPlan first = plan(row0);
  if (kFastPath) WaitForPriorGrids();

  // The first row's operands before the weight: the row's reduction waits
  // for them, the weight only for the reduction (H200, a 256-node decode
  // chain of 1 x 4096 bf16: 342.3 -> 334 us a step with rows split over
  // clusters, 401 -> 390 without; ab6 in benchmarks/results/h200-2026-11-30b).
  RowOperands<X, K> cur;
  int parity = 0;
  issue(first, cur);
  // The silu table: copied by cp.async (no registers held), waited for and
  // made visible to the block before the first row's outputs.
  if constexpr (kTable) {
    const char* source = reinterpret_cast<const char*>(kSiluBf16Table);
    for (int i = threadIdx.x; i < silu_table::kBytes / sizeof(uint4);
         i += blockDim.x) {
      StageAsync16(&silu_table_words[i], source + i * sizeof(uint4));
    }
  }
  [[maybe_unused]] bool silu_table_ready = false;
  Chunk<W> wc[K];
  if (kEarlyWeight) {
#pragma unroll
    for (int i = 0; i < K; ++i) {
      const char* w = weight + chunk(i) * kChunk * kSize<W>;
      if (kFastPath && whole_chunks && accessed(std::true_type(), i)) {
        LoadFullChunk<W>(w, wc[i]);
      } else {
        LoadChunk<W>(w, weight_count[i], wc[i]);
      }
    }
  }

  while (true) {
    const int64_t next0 = row0 + step;
    const bool more = next0 < p.rows;
    RowOperands<X, K> next;
    if (kPipeline && more) load(next0, next);
    const int64_t r = row0 + row_in_block < p.rows ? row0 + row_in_block : 0;
    if constexpr (kGated && !kEarlyGate) {
      // This row's gate, loaded while the row is reduced.
      const char* gate = lane_ptr(XTag(), p.gate, r, p.gate_stride);
#pragma unroll
      for (int i = 0; i < K; ++i) {
        const char* g = gate + i * slot_offset * kSize<X>;
        if (cur.full && accessed(std::true_type(), i)) {
          LoadFullChunk<X>(g, cur.gc[i]);
        } else {
          LoadChunk<X>(g, cur.count[i], cur.gc[i]);
        }
      }
    }
    // The residual written back (the sum's rounded bits, which in HF order
    // are also the norm input), and each slot's chunk sum of squares.
    // Elements past the row are +0 and add exact zeros, as the tree's padding
    // does.
    double leaves[K];
    auto sums_of_squares = [&](auto full) {
      char* res = kResidual ? lane_ptr(XTag(), p.residual, r, p.residual_stride)
                            : nullptr;
#pragma unroll
      for (int i = 0; i < K; ++i) {
        if (kResidual) {
          // R_X(x + residual): packed additions for 16-bit activations.
          Chunk<X> rounded;
          if constexpr (kSize<X> == 2) {
#pragma unroll
            for (int q = 0; q < Chunk<X>::kWords; ++q) {
              rounded.w[q] = PackedAdd<X>(cur.xc[i].w[q], cur.rc[i].w[q]);
            }
            CanonicalizeNans<X>(rounded);
          } else {
            float sum[kChunk];
#pragma unroll
            for (int e = 0; e < kChunk; ++e) {
              sum[e] = cur.xc[i].Value(e) + cur.rc[i].Value(e);
            }
            EncodeOutputChunk<X>(sum, rounded);
          }
          if (accessed(full, i)) {
            store(full, XTag(), res + i * slot_offset * kSize<X>, cur.count[i],
                  rounded);
          }
          if (kHf) cur.rc[i] = rounded;
        }
        float v[kChunk];
#pragma unroll
        for (int e = 0; e < kChunk; ++e) {
          v[e] = InputValue<X, kForm>(cur.xc[i], cur.rc[i], e);
        }
        leaves[i] = numerics::ChunkSumOfSquares(v, kChunk);
      }
    };
    if (cur.full) {
      sums_of_squares(std::true_type());
    } else {
      sums_of_squares(std::false_type());
    }
    // The staged buffer is free once the sums above have used every value
    // read from it: the next row into it, while this one is reduced and
    // written.
    if (kStaged && more) stage(plan(next0));
    double total = RowTotal<K, kLean>(leaves, g, parity, warp_sums);
    if (split) {
      total = ClusterRowTotal(total, cluster, rank, parity, exchange_phases,
                              exchange);
    }
    // The latency-bound K = 1: the power-of-two shortcut of the mean and
    // rsqrt where it gives the same bits; the division and the exact chain
    // (same bits) otherwise (numerics::MeanOfSquares says why). 0 where
    // float32 accumulation overflows (numerics::SumAsFloat32Accumulates).
    total = numerics::SumAsFloat32Accumulates(total);
    const float inv_rms =
        K == 1 ? InvRmsOfMeanForLatency(numerics::MeanOfSquares(total, p.cols),
                                        p.eps)
               : numerics::InvRmsOfMean(total / static_cast<double>(p.cols),
                                        p.eps);

    if constexpr (kTable) {
      if (!silu_table_ready) {
        WaitForStaged();
        __syncthreads();
        silu_table_ready = true;
      }
    }
    auto write_outputs = [&](auto full) {
      char* out = lane_ptr(OTag(), p.out, r, p.out_stride);
      const char* w = weight + lane_offset * kSize<W>;
#pragma unroll
      for (int i = 0; i < K; ++i) {
        if (i % 2 == 0 && !kEarlyWeight) {
#pragma unroll
          for (int q = i; q < i + 2 && q < K; ++q) {
            if (accessed(full, q)) {
              load_chunk(full, std::integral_constant<DType, W>(),
                         w + q * slot_offset * kSize<W>, cur.count[q], wc[q]);
            }
          }
        }
        if (decltype(full)::value ? !accessed(full, i) : cur.count[i] == 0) {
          continue;
        }
        Chunk<O> oc;
        // With the table, the chunk's silu from its lookups.
        [[maybe_unused]] float table_silu[kChunk];
        if constexpr (kTable)
          TableSilus(cur.gc[i],
                     reinterpret_cast<const float*>(silu_table_words),
                     table_silu);
        if constexpr (kHf && !kScale && kSize<X> == 2) {
          // NormOutput with R_X(v r) rounded two at a time (packed
          // conversions; a NaN stays a NaN and is canonicalised on store).
          Chunk<X> rounded;
#pragma unroll
          for (int q = 0; q < kChunk / 2; ++q) {
            rounded.w[q] = PackPair<X>(
                InputValue<X, kForm>(cur.xc[i], cur.rc[i], 2 * q) * inv_rms,
                InputValue<X, kForm>(cur.xc[i], cur.rc[i], 2 * q + 1) *
                    inv_rms);
          }
          if constexpr (W == X) {
            // weight * hidden rounded to X (what HfOutputFromRounded's result
            // rounds to, ungated, and its gated intermediate): packed
            // multiplications.
#pragma unroll
            for (int q = 0; q < kChunk / 2; ++q) {
              oc.w[q] = PackedMul<X>(wc[i].w[q], rounded.w[q]);
            }
            if constexpr (kGated) {
              float o[kChunk];
#pragma unroll
              for (int e = 0; e < kChunk; ++e) {
                o[e] = oc.Value(e) *
                       (kTable ? table_silu[e]
                               : SiluWithoutBranches(cur.gc[i].Value(e)));
              }
              EncodeOutputChunk<O>(o, oc);
            } else {
              CanonicalizeNans<O>(oc);
            }
          } else {
            float o[kChunk];
#pragma unroll
            for (int e = 0; e < kChunk; ++e) {
              const float silu = kTable ? table_silu[e]
                                 : kGated
                                     ? SiluWithoutBranches(cur.gc[i].Value(e))
                                     : 0.0f;
              o[e] = numerics::HfOutputFromRounded<X, W>(
                  rounded.Value(e), wc[i].Value(e), kGated, silu);
            }
            EncodeOutputChunk<O>(o, oc);
          }
        } else {
          float o[kChunk];
#pragma unroll
          for (int e = 0; e < kChunk; ++e) {
            const float silu = kTable ? table_silu[e]
                               : kGated
                                   ? SiluWithoutBranches(cur.gc[i].Value(e))
                                   : 0.0f;
            o[e] = numerics::NormOutput<X, W>(
                InputValue<X, kForm>(cur.xc[i], cur.rc[i], e), inv_rms,
                wc[i].Value(e), kScale, kHf, kGated, silu);
          }
          EncodeOutputChunk<O>(o, oc);
        }
        store(full, OTag(), out + i * slot_offset * kSize<O>, cur.count[i], oc);
      }
    };
    if (cur.full) {
      write_outputs(std::true_type());
    } else {
      write_outputs(std::false_type());
    }
    if (!more) break;
    if (kPipeline) {
      cur = next;
    } else if (kStaged) {
      read_staged(plan(next0), cur);
    } else {
      load(next0, cur);
    }
    row0 = next0;
    parity ^= 1;
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
  __shared__ double warp_sums[2 * 32];
  int parity = 0;

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
    double sums[1] = {sum};
    const float r = numerics::InvRms(
        RowTotal<1>(sums, threads_per_row, parity, warp_sums), p.cols, p.eps);
    parity ^= 1;

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
      float o[kChunk];
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        const float silu = gated ? SiluWithoutBranches(gc.Value(i)) : 0.0f;
        o[i] = numerics::NormOutput<X, W>(v[i], r, wc.Value(i), scale, hf,
                                          gated, silu);
      }
      if (res != nullptr) {
        Chunk<X> rc;
        EncodeOutputChunk<X>(rounded, rc);
        StoreChunk<X>(res + j0 * kSize<X>, count, rc);
      }
      Chunk<O> oc;
      EncodeOutputChunk<O>(o, oc);
      StoreChunk<O>(out + j0 * kSize<O>, count, oc);
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

// The register-cached kernel of form F, or null if it is not compiled.
template <DType X, DType W, int K, int F>
const void* RegisterKernelIfCompiled() {
  if constexpr (FormIsCompiled(W, K, F) &&
                ((F & kStagedForm) == 0 || kSize<X> == 2) &&
                ((F & kSiluTableForm) == 0 || X == DType::kBF16)) {
    return reinterpret_cast<const void*>(&RmsNormRegisterKernel<X, W, K, F>);
  }
  return nullptr;
}

// The register-cached kernel of `form`, one of Forms, from a table of all of
// them (a pack expansion in an initializer: a recursion over the forms would
// pass nvcc's instantiation depth, a fold clang's expression nesting limit).
template <DType X, DType W, int K, int... Forms>
const void* RegisterKernelOfForm(int form,
                                 std::integer_sequence<int, Forms...>) {
  static const void* const kKernels[] = {
      RegisterKernelIfCompiled<X, W, K, Forms>()...};
  if (form < 0 || form >= static_cast<int>(sizeof...(Forms))) return nullptr;
  return kKernels[form];
}
template <DType X, DType W, int K>
const void* RegisterKernelOfForm(int form) {
  return RegisterKernelOfForm<X, W, K>(
      form, std::make_integer_sequence<int, kLastForm + 1>());
}

// The kernel for (X, W, O): the register-cached one of `form` (FormOf) with k
// chunks per thread (1, 2 or 4), or (k == 0) the
// streaming one; null if that kernel is not compiled.
template <DType X, DType W, DType O>
const void* RmsNormFunction(int64_t k, int form) {
  if (k == 0) {
    return reinterpret_cast<const void*>(&RmsNormStreamingKernel<X, W, O>);
  }
  if constexpr (RegisterCachedCombination(X, W, O)) {
    switch (k) {
      case 1:
        return RegisterKernelOfForm<X, W, 1>(form);
      case 2:
        return RegisterKernelOfForm<X, W, 2>(form);
      case 4:
        return RegisterKernelOfForm<X, W, 4>(form);
    }
  }
  return nullptr;
}

template <DType X, DType W>
const void* WithOutput(DType o, int64_t k, int form) {
  if (o == X) return RmsNormFunction<X, W, X>(k, form);
  return RmsNormFunction<X, W, DType::kF32>(k, form);  // the promoted type
}

// The kernels of activation dtype X, for weight dtype w and output dtype o.
template <DType X>
const void* SelectForActivation(DType w, DType o, int64_t k, int form) {
  switch (w) {
    case DType::kF32:
      return WithOutput<X, DType::kF32>(o, k, form);
    case DType::kBF16:
      return WithOutput<X, DType::kBF16>(o, k, form);
    case DType::kF16:
      return WithOutput<X, DType::kF16>(o, k, form);
  }
  return nullptr;
}

}  // namespace
}  // namespace cuda_kernels

// Defined by rms_norm_{f32,bf16,f16}.cu, one activation dtype each.
// `form` is cuda_kernels::FormOf(params).
const void* SelectRmsNormF32(DType w, DType o, int64_t k, int form);
const void* SelectRmsNormBf16(DType w, DType o, int64_t k, int form);
const void* SelectRmsNormF16(DType w, DType o, int64_t k, int form);

}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_CUDA_RMS_NORM_KERNELS_H_
