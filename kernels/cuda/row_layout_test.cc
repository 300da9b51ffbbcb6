// The CUDA kernels' partition of the reduction, checked on the host (no GPU
// needed): for every layout the planner can choose, the register-cached
// kernel's strided ownership (thread t's slot q is chunk q G + t), the xor
// butterfly it runs per slot (within a warp, then across the row's warps) and
// the slots' pairwise sum (SubtreeSum, the function the kernel calls) give the
// row's sum of squares bit for bit as the CPU reference computes it, on every
// thread. The butterfly is emulated lane by lane; the
// GPU test (kernels_cuda_test) checks the real kernels against the CPU.

#include "kernels/cuda/row_layout.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/norm_numerics.h"

namespace normgraph {
namespace cuda_layout {
namespace {

using numerics::kChunk;

// One xor-butterfly level over `lanes` (a power of two): lane t adds lane
// t ^ off, as __shfl_xor_sync does.
void ButterflyLevel(std::vector<double>& s, int64_t off) {
  const std::vector<double> before = s;
  for (size_t t = 0; t < s.size(); ++t) s[t] = before[t] + before[t ^ off];
}

// The butterfly within a warp, then across the row's warps: lane l of each
// warp reads warp l's sum (lanes past the row's warps read 0), the warp runs
// the butterfly, lane 0's value is broadcast.
void RowButterfly(std::vector<double>& s) {
  const int64_t g = static_cast<int64_t>(s.size());
  for (int64_t off = 1; off < std::min<int64_t>(g, 32); off *= 2) {
    ButterflyLevel(s, off);
  }
  if (g > 32) {
    const int64_t warps = g / 32;
    std::vector<double> w(32, 0.0);
    for (int64_t j = 0; j < warps; ++j) w[j] = s[j * 32];
    for (int64_t off = 1; off < warps; off *= 2) ButterflyLevel(w, off);
    for (int64_t t = 0; t < g; ++t) s[t] = w[0];
  }
}

double SlotsSum(const std::vector<double>& slots) {
  switch (slots.size()) {
    case 1:
      return SubtreeSum<1>(slots.data());
    case 2:
      return SubtreeSum<2>(slots.data());
    case 4:
      return SubtreeSum<4>(slots.data());
  }
  ADD_FAILURE() << "no kernel for K " << slots.size();
  return 0.0;
}

// The row total every thread of a row ends with, as the register-cached
// kernel computes it with layout `l` (one row): thread t's slot q is chunk
// q G + t; one butterfly per slot, then the slots' pairwise sum.
std::vector<double> KernelTotals(const std::vector<float>& v,
                                 const RowLayout& l) {
  const int64_t cols = static_cast<int64_t>(v.size());
  std::vector<double> leaves(l.padded_chunks, 0.0);
  for (int64_t c = 0; c * kChunk < cols; ++c) {
    float chunk[kChunk] = {};
    for (int e = 0; e < kChunk && c * kChunk + e < cols; ++e) {
      chunk[e] = v[c * kChunk + e];
    }
    leaves[c] = numerics::ChunkSumOfSquares(chunk, kChunk);
  }
  const int64_t g = l.threads_per_row, k = l.chunks_per_thread;
  std::vector<std::vector<double>> slots(k, std::vector<double>(g));
  for (int64_t q = 0; q < k; ++q) {
    for (int64_t t = 0; t < g; ++t) slots[q][t] = leaves[q * g + t];
    RowButterfly(slots[q]);
  }
  std::vector<double> totals(g);
  for (int64_t t = 0; t < g; ++t) {
    std::vector<double> mine(k);
    for (int64_t q = 0; q < k; ++q) mine[q] = slots[q][t];
    totals[t] = SlotsSum(mine);
  }
  return totals;
}

std::vector<float> RandomRow(std::mt19937_64& rng, int64_t cols, int family) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(cols);
  for (int64_t j = 0; j < cols; ++j) {
    switch (family) {
      case 0:
        v[j] = normal(rng);
        break;
      case 1:
        v[j] = 0.1f;  // all equal: the order shows in the last bits
        break;
      default:
        v[j] = normal(rng) * std::exp2(static_cast<float>(rng() % 60) - 30.0f);
    }
  }
  return v;
}

// The bit arithmetic the kernels derive their layout with, against the
// definitions (a doubling loop; a power's exponent).
TEST(RowLayoutTest, PowerOfTwoHelpersMatchTheirDefinitions) {
  auto next_by_loop = [](int64_t v) {
    int64_t p = 1;
    while (p < v) p *= 2;
    return p;
  };
  std::vector<int64_t> values = {-5, -1, 0, 1, 2, 3};
  for (int k = 1; k < 62; ++k) {
    const int64_t p = int64_t{1} << k;
    values.insert(values.end(), {p - 1, p, p + 1});
  }
  for (int64_t v = 0; v <= 5000; ++v) values.push_back(v);
  for (const int64_t v : values) {
    EXPECT_EQ(cuda_layout::NextPowerOfTwo(v), next_by_loop(v)) << v;
  }
  for (int k = 0; k < 63; ++k) {
    EXPECT_EQ(cuda_layout::Log2OfPowerOfTwo(int64_t{1} << k), k);
  }
}

TEST(RowLayoutTest, EveryRegisterLayoutComputesTheCpuSumBitForBit) {
  std::mt19937_64 rng(7);
  std::vector<int64_t> cols_list;
  for (int64_t c = 1; c <= 600; ++c) cols_list.push_back(c);
  for (int64_t c : {1000, 1023, 1024, 1025, 1536, 2304, 2560, 3584, 4095, 4096,
                    4097, 5120, 8191, 8192, 8193, 12288, 16383, 16384}) {
    cols_list.push_back(c);
  }
  int layouts = 0;
  for (int64_t cols : cols_list) {
    for (int64_t k : {1, 2, 4}) {
      const RowLayout l = RegisterLayout(1, cols, k, 0);
      if (!l.register_cached) continue;
      ++layouts;
      for (int family = 0; family < 3; ++family) {
        const std::vector<float> v = RandomRow(rng, cols, family);
        numerics::PairwiseAccumulator<> cpu;
        for (int64_t j = 0; j < cols; j += kChunk) {
          cpu.Add(numerics::ChunkSumOfSquares(
              &v[j], static_cast<int>(std::min<int64_t>(kChunk, cols - j))));
        }
        const std::vector<double> totals = KernelTotals(v, l);
        for (size_t t = 0; t < totals.size(); ++t) {
          ASSERT_EQ(totals[t], cpu.Total())
              << "cols " << cols << " K " << k << " thread " << t << " family "
              << family;
        }
        ASSERT_EQ(numerics::InvRms(totals[0], cols, 1e-6f),
                  InvRms(v.data(), cols, 1e-6f));
      }
    }
  }
  EXPECT_GT(layouts, 1500);
}

TEST(RowLayoutTest, PlannedLaunchesAreValid) {
  for (int64_t x_bytes : {2, 4}) {
    for (bool residual : {false, true}) {
      for (int64_t cols = 1; cols <= 20000; cols += cols < 300 ? 1 : 97) {
        for (int64_t rows :
             {1, 2, 3, 16, 33, 64, 100, 1024, 4096, 32768, 1 << 20}) {
          const RowLayout l = PlanLayout(rows, cols, x_bytes, residual);
          SCOPED_TRACE(testing::Message()
                       << "rows " << rows << " cols " << cols << " x_bytes "
                       << x_bytes << " residual " << residual);
          const int64_t p = PaddedChunks(cols);
          ASSERT_EQ(l.padded_chunks, p);
          ASSERT_EQ(l.threads_per_row * l.chunks_per_thread, p);
          if (!l.register_cached) {
            ASSERT_GT(p, kMaxRegisterChunks);
            continue;
          }
          ASSERT_LE(l.chunks_per_thread, kMaxRegisterK);
          ASSERT_EQ(l.block_threads, l.rows_per_block * l.threads_per_row);
          ASSERT_EQ(l.block_threads % 32, 0);
          ASSERT_LE(l.block_threads,
                    MaxRegisterThreads(static_cast<int>(l.chunks_per_thread)));
          ASSERT_GE(l.rows_per_block, 1);
          // Small launches: the most threads per row.
          if (rows * p < kThroughputChunks) {
            ASSERT_EQ(l.chunks_per_thread, p > 1024 ? 4 : 1);
          }
        }
      }
    }
  }
  // The regimes the benchmarks name.
  EXPECT_EQ(PlanLayout(1, 4096, 2, false).chunks_per_thread, 1);
  EXPECT_EQ(PlanLayout(1, 4096, 2, false).block_threads, 512);
  // Prefill: 64 bytes of each operand per thread, blocks of 128 threads;
  // 32 bytes for per-head rows.
  EXPECT_EQ(PlanLayout(4096, 4096, 2, false).chunks_per_thread, 4);
  EXPECT_EQ(PlanLayout(4096, 4096, 2, false).block_threads, 128);
  EXPECT_EQ(PlanLayout(4096, 4096, 4, false).chunks_per_thread, 2);
  EXPECT_EQ(PlanLayout(4096, 16384, 2, false).chunks_per_thread, 4);
  EXPECT_EQ(PlanLayout(4096, 16384, 2, false).block_threads, 512);  // G = 512
  EXPECT_EQ(PlanLayout(131072, 128, 2, false).chunks_per_thread, 2);
  EXPECT_EQ(PlanLayout(131072, 128, 4, false).chunks_per_thread, 1);
  EXPECT_EQ(PlanLayout(1, 16384, 2, false).chunks_per_thread, 4);
  EXPECT_EQ(PlanLayout(1, 16384, 4, false).chunks_per_thread, 4);
  EXPECT_EQ(PlanLayout(4096, 16384, 4, false).chunks_per_thread, 4);
  EXPECT_EQ(PlanLayout(4096, 8192, 4, false).chunks_per_thread, 2);
  EXPECT_FALSE(PlanLayout(1, 16385, 4, false).register_cached);
  // 16-bit rows of C < P chunks with a residual: 32 bytes (K = 2) in
  // prefill; rows of P chunks, f32 rows and decode launches as without one.
  EXPECT_EQ(PlanLayout(4096, 1536, 2, true).chunks_per_thread, 2);
  EXPECT_EQ(PlanLayout(4096, 1536, 2, true).block_threads, 128);
  EXPECT_EQ(PlanLayout(32768, 5120, 2, true).chunks_per_thread, 2);
  EXPECT_EQ(PlanLayout(4096, 1536, 2, false).chunks_per_thread, 4);
  EXPECT_EQ(PlanLayout(4096, 4096, 2, true).chunks_per_thread, 4);
  EXPECT_EQ(PlanLayout(4096, 1536, 4, true).chunks_per_thread, 2);
  EXPECT_EQ(PlanLayout(1, 1536, 2, true).chunks_per_thread, 1);
  // Below kResidualK2Chunks (rows x P = 2^18 here), K = 4 as without one.
  EXPECT_EQ(PlanLayout(1024, 1536, 2, true).chunks_per_thread, 4);
  // 12288 (1536 of 2048 chunks) needs K = 4 (K = 2 would take 1024 threads).
  EXPECT_EQ(PlanLayout(4096, 12288, 2, true).chunks_per_thread, 4);
  EXPECT_FALSE(PlanLayout(1, 16385, 2, false).register_cached);
}

}  // namespace
}  // namespace cuda_layout
}  // namespace normgraph
