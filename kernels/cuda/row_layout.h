#ifndef NORMGRAPH_KERNELS_CUDA_ROW_LAYOUT_H_
#define NORMGRAPH_KERNELS_CUDA_ROW_LAYOUT_H_

// How the CUDA row-norm kernels spread a row over threads, and the part of
// the shared reduction (kernels/norm_numerics.h) that each thread does. The
// host (choosing the launch) and the kernels (walking their chunks) both
// derive the layout from sizes and dtypes alone, never from pointers, so a
// rebind, which changes only pointers, keeps it.
//
// A row of n elements is C = ceil(n / 8) chunks of 8 (numerics::kChunk),
// padded with empty chunks to P, a power of two. Each row is handled by G
// threads (a power of two), each owning k = P / G chunks, and the row's
// pairwise tree is completed by xor butterflies across threads (t with t ^ 1,
// then t ^ 2, ...). Empty chunks add zeros, which the tree adds exactly. Two
// ownerships, both exactly the tree:
//  - strided (the register-cached kernel): thread t owns chunks q G + t for
//    q < k, one per slot q. The G chunks of a slot are an aligned subtree of
//    G leaves; the butterfly over the G threads sums it (partners hold
//    adjacent aligned subtrees of equal size), one butterfly per slot; the k
//    slot sums are then adjacent aligned subtrees, summed pairwise
//    (SubtreeSum). A warp's accesses to one slot are contiguous (coalesced).
//  - contiguous (the streaming kernel): thread t owns chunks [t k, t k + k),
//    an aligned subtree it sums itself; one butterfly over the G sums.
//
// The kernels:
//  - the register-cached kernel (the fast path): k is a compile-time constant
//    K (1, 2 or 4); a thread loads its K chunks of
//    every operand once, keeps them in registers through the reduction and
//    writes its outputs from them: one pass over device memory. Several rows
//    share a block when G is small (rows_per_block = block / G). It takes rows
//    of up to 2048 padded chunks (16384 elements): K <= 4 at 128 registers a
//    thread, and at most 512 threads per row for K > 1, 1024 for K = 1.
//  - the streaming kernel (rows longer than that): G up to
//    512 threads with any power-of-two k, a binary-counter accumulator per
//    thread, and a second pass that reads the row again.
//
// At K = 1 the plan may also split each row over a thread-block cluster of
// CTAs on several SMs (decode-sized launches; kernels.cu, RowCluster): CTA c
// of the cluster then owns the row's threads [c G / CS, (c + 1) G / CS),
// an aligned subtree again, and the CTAs add their sums in rank order
// (rms_norm_kernels.h, ClusterExchange).
//
// Which K: the fewest chunks per thread that fit (most threads per row, the
// shortest critical path) while the launch is small (decode: a few rows, per
// head norms of a few tokens); once rows x P fills the GPU many times over
// (prefill), 64 bytes of each operand per thread (K = 4 of 16-bit
// activations, 2 of f32) in blocks of 128 threads, 32 bytes for rows shorter
// than 512 elements (per-head norms) and for 16-bit rows of C < P chunks with
// a residual in big launches: the best or within a few percent of the best of
// the layouts measured on the H200 (benchmarks/RESULTS.md, BM_Layout).

#include <cstdint>

#include "core/float_bits.h"
#include "kernels/norm_numerics.h"

namespace normgraph {
namespace cuda_layout {

// The register-cached kernel's largest K and row (in padded chunks): 64
// bytes of 16-bit activations a thread, 128 of f32 ones (the f32 K = 4 forms
// also keep the threads' 128 registers; rows of 8193-16384 f32 elements ran
// the streaming kernel at a third of the copy bandwidth before).
constexpr int64_t kMaxRegisterK = 4;
constexpr int64_t kMaxRegisterChunks = 2048;
// Most threads per row of the streaming kernel.
constexpr int64_t kMaxThreadsPerRow = 512;
// Block size of the streaming kernel when several rows share a block (rows of
// <= 32 threads).
constexpr int64_t kSmallRowBlock = 256;
// rows x P at or above which a launch counts as throughput-bound (prefill):
// 2^18 chunks is 4 MiB of 16-bit activations, enough to fill the GPU.
constexpr int64_t kThroughputChunks = int64_t{1} << 18;
// rows x P from which 16-bit rows of C < P chunks with a residual take
// K = 2 (PlanLayout).
constexpr int64_t kResidualK2Chunks = int64_t{1} << 20;

// The smallest power of two >= v (1 for v <= 1). Bit arithmetic, not a
// loop: the kernels compute their layout from it before every row.
NG_HOST_DEVICE int64_t NextPowerOfTwo(int64_t v) {
  if (v <= 1) return 1;
  const uint64_t below = static_cast<uint64_t>(v - 1);
#if defined(__CUDA_ARCH__)
  return int64_t{1} << (64 - __clzll(static_cast<long long>(below)));
#else
  return int64_t{1} << (64 - __builtin_clzll(below));
#endif
}

// log2 of a power of two.
NG_HOST_DEVICE int Log2OfPowerOfTwo(int64_t v) {
#if defined(__CUDA_ARCH__)
  return __ffsll(v) - 1;
#else
  return __builtin_ctzll(static_cast<uint64_t>(v));
#endif
}

// C: the chunks of a row of `cols` elements, ceil(cols / 8).
NG_HOST_DEVICE int64_t RowChunks(int64_t cols) {
  return (cols + numerics::kChunk - 1) / numerics::kChunk;
}

// P: C rounded up to a power of two.
NG_HOST_DEVICE int64_t PaddedChunks(int64_t cols) {
  return NextPowerOfTwo(RowChunks(cols));
}

// Most threads per block (and so per row) the register-cached kernel with K
// chunks per thread is compiled for (its __launch_bounds__): larger K holds
// more registers per thread.
NG_HOST_DEVICE constexpr int MaxRegisterThreads(int k) {
  return k == 1 ? 1024 : 512;
}

// The balanced pairwise sum of K leaves (K a power of two), in the tree's
// order: the sum of one thread's aligned run of K chunk sums.
template <int K>
NG_HOST_DEVICE double SubtreeSum(const double* leaves) {
  if constexpr (K == 1) {
    return leaves[0];
  } else {
    return SubtreeSum<K / 2>(leaves) + SubtreeSum<K / 2>(leaves + K / 2);
  }
}

// The launch of one rms_norm call.
struct RowLayout {
  bool register_cached = true;
  int64_t padded_chunks = 1;      // P
  int64_t chunks_per_thread = 1;  // k (K of the register-cached kernel)
  int64_t threads_per_row = 1;    // G = P / k
  int64_t rows_per_block = 1;     // block_threads / G
  int64_t block_threads = 32;
};

// The streaming kernel's layout (rows of any length).
NG_HOST_DEVICE RowLayout StreamingLayout(int64_t cols) {
  RowLayout l;
  l.register_cached = false;
  l.padded_chunks = PaddedChunks(cols);
  l.threads_per_row =
      l.padded_chunks < kMaxThreadsPerRow ? l.padded_chunks : kMaxThreadsPerRow;
  l.chunks_per_thread = l.padded_chunks / l.threads_per_row;
  if (l.threads_per_row <= 32) {
    l.rows_per_block = kSmallRowBlock / l.threads_per_row;
    l.block_threads = kSmallRowBlock;
  } else {
    l.rows_per_block = 1;
    l.block_threads = l.threads_per_row;
  }
  return l;
}

// The register-cached layout with K = `k` chunks per thread and blocks of
// about `block` threads (0: the default), or a layout with register_cached
// false if K does not fit the row (K > P, a K the kernel is not compiled for,
// or more threads per row than it is compiled for).
inline RowLayout RegisterLayout(int64_t rows, int64_t cols, int64_t k,
                                int64_t block) {
  RowLayout l;
  l.padded_chunks = PaddedChunks(cols);
  l.chunks_per_thread = k;
  if (l.padded_chunks > kMaxRegisterChunks || k > l.padded_chunks ||
      (k != 1 && k != 2 && k != 4) ||
      l.padded_chunks / k > MaxRegisterThreads(static_cast<int>(k))) {
    l.register_cached = false;
    return l;
  }
  l.threads_per_row = l.padded_chunks / k;
  const int64_t g = l.threads_per_row;
  if (block <= 0) block = g >= 128 ? g : 256;
  block = NextPowerOfTwo(block);
  if (block > MaxRegisterThreads(static_cast<int>(k))) {
    block = MaxRegisterThreads(static_cast<int>(k));
  }
  if (block < g) block = g;
  // No more rows per block than there are rows (fewer idle threads in small
  // launches), but whole warps: the shuffles name all 32 lanes.
  int64_t rows_per_block = block / g;
  const int64_t rows_pow2 = NextPowerOfTwo(rows < 1 ? 1 : rows);
  if (rows_per_block > rows_pow2) rows_per_block = rows_pow2;
  if (rows_per_block * g < 32) rows_per_block = 32 / g;
  l.rows_per_block = rows_per_block;
  l.block_threads = rows_per_block * g;
  return l;
}

// The automatic choice (see the top of this file) for rows of `x_bytes`
// elements, with a residual operand or not.
inline RowLayout PlanLayout(int64_t rows, int64_t cols, int64_t x_bytes,
                            bool residual) {
  const int64_t p = PaddedChunks(cols);
  if (p > kMaxRegisterChunks) return StreamingLayout(cols);
  int64_t min_k = 1;
  while (p / min_k > MaxRegisterThreads(static_cast<int>(min_k))) min_k *= 2;
  int64_t k = min_k;
  int64_t block = 0;
  if (rows * p >= kThroughputChunks) {
    // 64 bytes of each operand per thread (K = 4 of 16-bit activations, 2 of
    // f32) in blocks of 128 threads; 32 bytes for rows of fewer than 64
    // chunks (per-head norms), and for 16-bit rows of C < P chunks with a
    // residual in launches of kResidualK2Chunks or more: those forms hold two
    // operands a chunk and at K = 4 take neither the whole-chunk fast path nor
    // the pipeline (rms_norm_kernels.h), and the threads of K = 4 own a slot
    // past the row's end (H200, fused add bf16, K = 2 against 4: 4096 x 1536
    // 19.1 against 20.0 us, 32768 x 1536 115 against 127, 32768 x 2560 224
    // against 256, 16384 x 5120 224 against 265; but 1024 x 1536, a quarter
    // of kResidualK2Chunks, 7.0 against 6.7, and rows of P chunks the other
    // way, 32768 x 4096 299 against 283).
    const bool residual_row_with_empty_slots = residual && x_bytes == 2 &&
                                               rows * p >= kResidualK2Chunks &&
                                               RowChunks(cols) < p;
    const int64_t bytes = p >= 64 && !residual_row_with_empty_slots ? 64 : 32;
    const int64_t target = bytes / (numerics::kChunk * x_bytes);
    k = target < p ? target : p;
    if (k < min_k) k = min_k;
    block = 128;
  }
  return RegisterLayout(rows, cols, k, block);
}

}  // namespace cuda_layout
}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_CUDA_ROW_LAYOUT_H_
