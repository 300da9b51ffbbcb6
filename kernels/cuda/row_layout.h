#ifndef NORMGRAPH_KERNELS_CUDA_ROW_LAYOUT_H_
#define NORMGRAPH_KERNELS_CUDA_ROW_LAYOUT_H_

// How the CUDA row-norm kernel spreads a row over threads. The host (choosing
// the launch shape) and the kernel (walking its chunks) both derive it from
// the row length alone, so a rebind, which changes only pointers, keeps it.
//
// A row of n elements is ceil(n / 8) chunks of 8 (numerics::kChunk), padded to
// P, a power of two. Each row is handled by G threads (a power of two), each
// owning k = P / G *contiguous* chunks: thread t sums chunks [t k, t k + k) as
// one aligned subtree of the pairwise tree, and the G partial sums meet in a
// butterfly across threads, which completes the same tree
// (kernels/norm_numerics.h). Rows of up to 32 threads share a warp (several
// rows per block); longer rows get a block of their own.

#include <cstdint>

#include "core/float_bits.h"

namespace normgraph {
namespace cuda_layout {

// Most threads one row gets; longer rows give each thread more chunks.
constexpr int64_t kMaxThreadsPerRow = 512;
// Block size when several rows share a block (rows of <= 32 threads).
constexpr int64_t kSmallRowBlock = 256;

struct RowLayout {
  int64_t threads_per_row;    // G, a power of two in [1, kMaxThreadsPerRow]
  int64_t chunks_per_thread;  // k, a power of two
  int64_t rows_per_block;     // kSmallRowBlock / G, or 1
  int64_t block_threads;      // threads per block
};

NG_HOST_DEVICE int64_t NextPowerOfTwo(int64_t v) {
  int64_t p = 1;
  while (p < v) p *= 2;
  return p;
}

NG_HOST_DEVICE RowLayout LayoutFor(int64_t cols) {
  const int64_t padded_chunks = NextPowerOfTwo((cols + 7) / 8);
  RowLayout l;
  l.threads_per_row =
      padded_chunks < kMaxThreadsPerRow ? padded_chunks : kMaxThreadsPerRow;
  l.chunks_per_thread = padded_chunks / l.threads_per_row;
  if (l.threads_per_row <= 32) {
    l.rows_per_block = kSmallRowBlock / l.threads_per_row;
    l.block_threads = kSmallRowBlock;
  } else {
    l.rows_per_block = 1;
    l.block_threads = l.threads_per_row;
  }
  return l;
}

}  // namespace cuda_layout
}  // namespace normgraph

#endif  // NORMGRAPH_KERNELS_CUDA_ROW_LAYOUT_H_
