// The CUDA kernels' launch plans (row_layout.h chooses the row-norm layout),
// and the copy kernel. The row-norm kernels themselves are in
// rms_norm_kernels.h, instantiated by rms_norm_{f32,bf16,f16}.cu.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/rms_norm_kernels.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/rms_norm_params.h"

namespace normgraph {
namespace {

using cuda_kernels::AllowDependentLaunch;
using cuda_kernels::WaitForPriorGrids;

// The kernel of `p` with k chunks per thread (0: the streaming kernel) of
// form `form` (cuda_kernels::FormOf's bits and the launch's), or null if it
// is not compiled.
const void* SelectRmsNormForm(const RmsNormParams& p, int64_t k, int form) {
  switch (p.x_dtype) {
    case DType::kF32:
      return SelectRmsNormF32(p.weight_dtype, p.out_dtype, k, form);
    case DType::kBF16:
      return SelectRmsNormBf16(p.weight_dtype, p.out_dtype, k, form);
    case DType::kF16:
      return SelectRmsNormF16(p.weight_dtype, p.out_dtype, k, form);
  }
  return nullptr;
}

// The kernel of `p` with k chunks per thread (0: the streaming kernel), its
// rows split over clusters if `split` (K = 1 only), the wide form if `wide`
// (gated K = 1 only), with `launch_form`'s bits (kSiluTableForm); for rows of
// C < P chunks whose length is a multiple of a chunk, the empty-slots form
// where it is compiled (kEmptySlotsForm).
const void* SelectRmsNorm(const RmsNormParams& p, int64_t k, bool split,
                          bool wide, int launch_form = 0) {
  const int form = cuda_kernels::FormOf(p) |
                   (split ? cuda_kernels::kSplitForm : 0) |
                   (wide ? cuda_kernels::kWideForm : 0) | launch_form;
  if (k > 1 && p.cols % numerics::kChunk == 0 &&
      cuda_layout::RowChunks(p.cols) < cuda_layout::PaddedChunks(p.cols)) {
    const void* function =
        SelectRmsNormForm(p, k, form | cuda_kernels::kEmptySlotsForm);
    if (function != nullptr) return function;
  }
  return SelectRmsNormForm(p, k, form);
}

// --- the copy kernel
// ------------------------------------------------------------------

__global__ void CopyKernel(const CopyParams p) {
  AllowDependentLaunch();
  WaitForPriorGrids();
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

// --- launch settings
// -------------------------------------------------------------------

// Most blocks of one launch; the kernels loop over the rest.
constexpr int64_t kMaxBlocks = (int64_t{1} << 31) - 1;

std::atomic<int> layout_override_k{0};
std::atomic<int> layout_override_block{0};
std::atomic<int> layout_override_max_blocks{0};
std::atomic<int> layout_override_cluster{0};
std::atomic<bool> wide_gated_kernels{true};

// A setting that is on unless the environment variable `name` is "0".
bool EnabledByEnvironment(const char* name) {
  const char* env = std::getenv(name);
  return env == nullptr || std::strcmp(env, "0") != 0;
}

std::atomic<bool>& PdlEnabled() {
  static std::atomic<bool> enabled{EnabledByEnvironment("NORMGRAPH_CUDA_PDL")};
  return enabled;
}

std::atomic<bool>& SpreadEnabled() {
  static std::atomic<bool> enabled{
      EnabledByEnvironment("NORMGRAPH_CUDA_SPREAD")};
  return enabled;
}

std::atomic<bool>& StagedEnabled() {
  static std::atomic<bool> enabled{
      EnabledByEnvironment("NORMGRAPH_CUDA_STAGED")};
  return enabled;
}

std::atomic<bool>& SiluTableEnabled() {
  static std::atomic<bool> enabled{
      EnabledByEnvironment("NORMGRAPH_CUDA_SILU_TABLE")};
  return enabled;
}

cuda_layout::RowLayout LayoutOf(const RmsNormParams& p) {
  const int k = layout_override_k.load(std::memory_order_relaxed);
  if (k == -1 || !cuda_kernels::RegisterCachedCombination(
                     p.x_dtype, p.weight_dtype, p.out_dtype)) {
    return cuda_layout::StreamingLayout(p.cols);
  }
  if (k > 0) {
    const cuda_layout::RowLayout forced = cuda_layout::RegisterLayout(
        p.rows, p.cols, k,
        layout_override_block.load(std::memory_order_relaxed));
    if (forced.register_cached) return forced;
  }
  return cuda_layout::PlanLayout(p.rows, p.cols, DTypeSize(p.x_dtype),
                                 p.residual != nullptr);
}

// What plans need to know of the current device, read once per device.
// `sms` is 0 if the runtime cannot say (callers then assume nothing).
struct DeviceFacts {
  int device = -1;
  int64_t sms = 0;
  bool clusters = false;  // compute capability 9.0+: thread-block clusters
};

DeviceFacts CurrentDeviceFacts() {
  DeviceFacts facts;
  if (cudaGetDevice(&facts.device) != cudaSuccess) {
    cudaGetLastError();  // not sticky: cleared, so no later check reports it
    facts.device = -1;
    return facts;
  }
  static std::mutex mu;
  static std::map<int, DeviceFacts> cache;
  std::lock_guard<std::mutex> lock(mu);
  const auto it = cache.find(facts.device);
  if (it != cache.end()) return it->second;
  int sms = 0, clusters = 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount,
                             facts.device) == cudaSuccess &&
      cudaDeviceGetAttribute(&clusters, cudaDevAttrClusterLaunch,
                             facts.device) == cudaSuccess) {
    facts.sms = sms;
    facts.clusters = clusters != 0;
  } else {
    cudaGetLastError();  // not sticky: cleared, so no later check reports it
  }
  cache.emplace(facts.device, facts);
  return facts;
}

// How many blocks of `function` (with `block_threads` threads and
// `shared_bytes` of dynamic shared memory) the current device holds at once,
// or 0 if the runtime cannot say (the caller then does not cap its grid).
// Cached: plans are made for every launch.
int64_t ResidentBlocks(const void* function, int block_threads,
                       uint32_t shared_bytes) {
  const DeviceFacts facts = CurrentDeviceFacts();
  if (facts.sms == 0) return 0;
  static std::mutex mu;
  static std::map<std::tuple<int, const void*, int, uint32_t>, int64_t> cache;
  const auto key =
      std::make_tuple(facts.device, function, block_threads, shared_bytes);
  std::lock_guard<std::mutex> lock(mu);
  const auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  int per_sm = 0;
  int64_t resident = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(
          &per_sm, function, block_threads, shared_bytes) == cudaSuccess) {
    resident = facts.sms * per_sm;
  } else {
    cudaGetLastError();  // not sticky: cleared, so no later check reports it
  }
  cache.emplace(key, resident);
  return resident;
}

// Programmatic dependent launch only for launches of at most this many
// row groups (blocks, or clusters where rows are split over clusters): it
// hides the launch latency of small dependent kernels (decode), but a larger
// dependent grid made resident early holds SM resources while it waits and
// made the 256-norm decode stack slower at batch 32 and 64 on the H200
// (benchmarks/RESULTS.md). Gated launches of the wide form and spread
// launches are the exceptions (WideGatedLaunch, SpreadLaunch).
constexpr int64_t kPdlMaxBlocks = 16;

// Fewest threads a CTA of a split row has: RowTotalForLatency then has the
// barrier that ClusterExchange's ordering relies on.
constexpr int64_t kMinClusterCtaThreads = 64;

// Most rows a launch may have for the automatic choice to split them over
// clusters. The 256-norm decode stack of [batch, 4096] bf16 on the H200 with
// programmatic dependent launch, us a step with the rows split / not: batch
// 1: 335 / 391, 8: 352 / 390 (benchmarks/results/h200-2026-11-30b; at hidden
// 8192 batch 1: 354 / 554, at 2048: 320 / 321); with an earlier build that
// split up to 66 rows (h200-2026-11-30/cuda_graph_benchmark_call4.json),
// batch 16: 427 / 420, 32: 600 / 585, 64: 652 / 595 (the SMs are busy
// anyway), and without programmatic dependent launch batch 1: 550 / 555 (no
// gain: the clusters' set-up no longer overlaps the previous node), so only
// with it.
constexpr int64_t kMaxClusteredRows = 8;

// How many CTAs each row of a K = 1 launch is split over
// (rms_norm_kernels.h, ClusterExchange). Automatically (`forced` 0), for
// launches of at most kMaxClusteredRows rows with programmatic dependent
// launch: the most, up to kMaxCluster, that leave each CTA at least
// kMinClusterCtaThreads threads and every CTA of the launch an SM of its own.
// `forced` (the layout override) 1 never splits, a power of two up to
// kMaxCluster splits that many ways where each CTA keeps
// kMinClusterCtaThreads. 1 (no cluster) for other layouts and on GPUs
// without clusters.
int64_t RowCluster(const cuda_layout::RowLayout& l, int64_t rows,
                   int64_t forced) {
  if (!l.register_cached || l.chunks_per_thread != 1 || forced == 1) return 1;
  const DeviceFacts device = CurrentDeviceFacts();
  if (!device.clusters || device.sms == 0) return 1;
  const int64_t sms = device.sms;
  const int64_t g = l.threads_per_row;
  if (forced > 1) {
    const bool fits = forced <= cuda_kernels::kMaxCluster &&
                      (forced & (forced - 1)) == 0 &&
                      g / forced >= kMinClusterCtaThreads;
    return fits ? forced : 1;
  }
  if (rows > kMaxClusteredRows || !PdlEnabled().load()) return 1;
  int64_t cluster = 1;
  while (cluster * 2 <= cuda_kernels::kMaxCluster &&
         g / (cluster * 2) >= kMinClusterCtaThreads &&
         rows * cluster * 2 <= sms) {
    cluster *= 2;
  }
  return cluster;
}

// Whether a gated K = 1 launch of `blocks` row groups of `cta_threads`
// threads (`cluster` CTAs each), not spread (SpreadLaunch), takes the wide
// form (rms_norm_kernels.h, kWideForm) and with it programmatic dependent
// launch: for launches of more row groups than kPdlMaxBlocks (where the
// usual kernel runs without it) whose CTAs all fit on the GPU at once at 128
// registers a thread. There the wide kernel with PDL beat the usual kernel
// with or without it in 256-node gated chains on the H200: 64 tokens x 32
// heads of 128, 2.14 us a node without PDL (2.73 with) -> 1.84; 64 x 4096,
// 2.83 (3.05) -> 2.12; while at 16 row groups or fewer (PDL on either way) it
// gained 1% (32 x 128) or lost 3% (256 x 128)
// (benchmarks/results/h200-2026-11-30d, call 6). Only with PDL enabled.
bool WideGatedLaunch(const RmsNormParams& p, const cuda_layout::RowLayout& l,
                     int64_t cta_threads, int64_t blocks, int64_t cluster) {
  if (p.gate == nullptr || !l.register_cached || l.chunks_per_thread != 1 ||
      cta_threads > cuda_kernels::kWideMaxThreads || blocks <= kPdlMaxBlocks ||
      !PdlEnabled().load() ||
      !wide_gated_kernels.load(std::memory_order_relaxed)) {
    return false;
  }
  const int64_t sms = CurrentDeviceFacts().sms;
  constexpr int64_t kWideThreadsPerSm = 65536 / 128;
  return sms > 0 && blocks * cluster * ((cta_threads + 31) / 32 * 32) <=
                        sms * kWideThreadsPerSm;
}

// Whether a K = 1 launch of `blocks` row groups (not split) is spread:
// programmatic dependent launch although it has more row groups than
// kPdlMaxBlocks, with dynamic shared memory it does not use so that an SM
// holds one of its CTAs at a time (SpreadSharedBytes). For launches whose
// CTAs each get an SM of their own. In 256-node chains on the H200
// (prototype, benchmarks/results/h200-2026-11-30e/wide_chain_ab.cu), us a
// node without PDL / with it / spread with it: rms 32 x 4096 2.07 / 1.86 /
// 1.56, 64 x 4096 2.12 / 1.96 / 1.61; fused add + zero-centred 64 x 4096
// 2.51 / 2.14 / 1.78; per-head 2048 x 128 (128 blocks) 1.71 / 1.66 / 1.23:
// the dependent CTAs, made resident early beside the running ones, slowed
// them, which is why PDL alone stopped paying above 16 row groups; kept to
// SMs of their own, they do not. The gated form's wide kernel (89 registers:
// one CTA of 512 threads an SM) had found part of this; spread, its usual
// kernel beat it (the product's gated chains, us a step, wide / spread: 64
// tokens x 32 heads of 128 470 / 403, 64 x 4096 556 / 560), so the wide form
// is left to the launches spreading cannot take.
bool SpreadLaunch(const cuda_layout::RowLayout& l, int64_t blocks,
                  int64_t cluster) {
  if (!l.register_cached || l.chunks_per_thread != 1 || cluster != 1 ||
      blocks <= kPdlMaxBlocks || !PdlEnabled().load() ||
      !SpreadEnabled().load()) {
    return false;
  }
  const int64_t sms = CurrentDeviceFacts().sms;
  return sms > 0 && blocks <= sms;
}

// The dynamic shared memory that leaves an SM room for one CTA of `function`
// with `block_threads` threads (half of an SM's, which the CTA may use:
// cudaFuncAttributeMaxDynamicSharedMemorySize is raised to it), or 0 where
// the device cannot do that (too little shared memory a block, or the
// occupancy query does not confirm one CTA an SM). Cached per device,
// function and block size.
uint32_t SpreadSharedBytes(const void* function, int block_threads) {
  const DeviceFacts facts = CurrentDeviceFacts();
  if (facts.sms == 0 || function == nullptr) return 0;
  static std::mutex mu;
  static std::map<std::tuple<int, const void*, int>, uint32_t> cache;
  const auto key = std::make_tuple(facts.device, function, block_threads);
  std::lock_guard<std::mutex> lock(mu);
  const auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  uint32_t bytes = 0;
  int per_sm_bytes = 0, per_block_bytes = 0, per_sm_blocks = 0;
  cudaFuncAttributes attributes;
  if (cudaDeviceGetAttribute(&per_sm_bytes,
                             cudaDevAttrMaxSharedMemoryPerMultiprocessor,
                             facts.device) == cudaSuccess &&
      cudaDeviceGetAttribute(&per_block_bytes,
                             cudaDevAttrMaxSharedMemoryPerBlockOptin,
                             facts.device) == cudaSuccess &&
      cudaFuncGetAttributes(&attributes, function) == cudaSuccess) {
    const int64_t half = per_sm_bytes / 2 + 1;
    if (half + static_cast<int64_t>(attributes.sharedSizeBytes) <=
            per_block_bytes &&
        cudaFuncSetAttribute(function,
                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(half)) == cudaSuccess &&
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &per_sm_blocks, function, block_threads,
            static_cast<size_t>(half)) == cudaSuccess &&
        per_sm_blocks == 1) {
      bytes = static_cast<uint32_t>(half);
    }
  }
  // A failed query or setting is not sticky: cleared, so that no later check
  // reports it (the launch then is not spread).
  cudaGetLastError();
  cache.emplace(key, bytes);
  return bytes;
}

// The staged form's kernel (rms_norm_kernels.h, kStagedForm) of a launch
// that may take it, with its dynamic shared memory in `shared_bytes`; null
// for the others: K = 4 with a residual and no gate, 16-bit activations,
// rows of at least kStagedMinRowThreads threads whose slots all hold a chunk
// (C = P: on rows of C < P chunks no thread takes the fast path the staged
// copies need), staging not turned off
// (SetStagedResidualRows), and a device that gives a block that much
// shared memory. cudaFuncAttributeMaxDynamicSharedMemorySize is a property
// of the function, which launches of rows of 256 and of 512 threads share:
// it is only ever raised (the most set so far is kept per device and
// function), since setting it for a smaller block would lower it under a
// larger block planned before (which then failed to launch).
const void* StagedFunction(const RmsNormParams& p,
                           const cuda_layout::RowLayout& l,
                           uint32_t* shared_bytes) {
  if (!StagedEnabled().load() || !l.register_cached ||
      l.chunks_per_thread != 4 || p.residual == nullptr || p.gate != nullptr ||
      DTypeSize(p.x_dtype) != 2 ||
      l.threads_per_row < cuda_kernels::kStagedMinRowThreads ||
      cuda_layout::RowChunks(p.cols) != l.padded_chunks) {
    return nullptr;
  }
  const void* function = SelectRmsNormForm(
      p, 4, cuda_kernels::FormOf(p) | cuda_kernels::kStagedForm);
  const DeviceFacts facts = CurrentDeviceFacts();
  if (function == nullptr || facts.sms == 0) return nullptr;
  const uint32_t bytes = cuda_kernels::StagedSharedBytes(l.block_threads);
  static std::mutex mu;
  static std::map<std::pair<int, const void*>, uint32_t> most_set;
  std::lock_guard<std::mutex> lock(mu);
  uint32_t& most = most_set[std::make_pair(facts.device, function)];
  if (bytes > most) {
    if (cudaFuncSetAttribute(function,
                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(bytes)) != cudaSuccess) {
      // Not sticky: cleared, so that no later check reports it (the launch
      // then is not staged).
      cudaGetLastError();
      return nullptr;
    }
    most = bytes;
  }
  *shared_bytes = bytes;
  return function;
}

}  // namespace

void PlanRmsNormCuda(const void* raw, CudaLaunch* launch) {
  RmsNormParams p;
  std::memcpy(&p, raw, sizeof p);
  const cuda_layout::RowLayout layout = LayoutOf(p);
  int64_t blocks = (p.rows + layout.rows_per_block - 1) / layout.rows_per_block;
  if (blocks < 1) blocks = 1;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  *launch = CudaLaunch{};
  // Rows split over clusters (RowCluster). A forced block size keeps its
  // blocks unless a cluster is forced too.
  int64_t forced_cluster =
      layout_override_cluster.load(std::memory_order_relaxed);
  if (forced_cluster == 0 &&
      layout_override_block.load(std::memory_order_relaxed) > 0) {
    forced_cluster = 1;
  }
  const int64_t cluster = RowCluster(layout, p.rows, forced_cluster);
  // Split rows: one row per cluster (up to the cap, after which clusters walk
  // rows), G / cluster threads a CTA.
  if (cluster > 1) {
    blocks = std::max<int64_t>(1, std::min(p.rows, kMaxBlocks / cluster));
  }
  const int64_t max_blocks =
      layout_override_max_blocks.load(std::memory_order_relaxed);
  if (layout.register_cached && max_blocks > 0 && blocks > max_blocks) {
    blocks = max_blocks;
  }
  const int64_t cta_threads =
      cluster > 1 ? layout.threads_per_row / cluster : layout.block_threads;
  const int64_t k = layout.register_cached ? layout.chunks_per_thread : 0;
  launch->function = SelectRmsNorm(p, k, cluster > 1, /*wide=*/false);
  // A spread launch where it applies, else the wide form where that does.
  uint32_t spread_bytes = 0;
  if (SpreadLaunch(layout, blocks, cluster)) {
    spread_bytes =
        SpreadSharedBytes(launch->function, static_cast<int>(cta_threads));
  }
  const bool wide = spread_bytes == 0 &&
                    WideGatedLaunch(p, layout, cta_threads, blocks, cluster);
  if (wide) launch->function = SelectRmsNorm(p, k, cluster > 1, wide);
  // Dynamic shared memory: a spread (K = 1) or staged (K = 4) launch's.
  uint32_t shared_bytes = spread_bytes;
  const void* unstaged = launch->function;
  if (const void* staged = StagedFunction(p, layout, &shared_bytes)) {
    launch->function = staged;
  }
  // Throughput-bound launches of the register-cached kernel (never split:
  // clusters are for a few rows): persistent blocks, as many as the GPU holds
  // at once, each pipelining its rows.
  if (layout.register_cached && launch->function != nullptr &&
      p.rows * layout.padded_chunks >= cuda_layout::kThroughputChunks) {
    const int64_t resident = ResidentBlocks(
        launch->function, static_cast<int>(layout.block_threads), shared_bytes);
    if (resident > 0 && blocks > resident) blocks = resident;
  }
  // A staged kernel stages only the row groups after a block's first: not
  // for launches whose blocks have one each.
  const int64_t row_groups =
      (p.rows + layout.rows_per_block - 1) / layout.rows_per_block;
  if (launch->function != unstaged && blocks >= row_groups) {
    launch->function = unstaged;
    shared_bytes = spread_bytes;
  }
  // Gated bf16 launches of K = 4 that are throughput-sized (prefill), or whose
  // blocks walk several row groups (which only a capped grid,
  // SetRmsNormLayoutOverride, gives a launch of another size): the kernels
  // with the silu table, with no more blocks than the GPU holds of them. Faster
  // from the smallest throughput-sized launches up (H200, gated bf16, us
  // without / with: 1024 x 1536 6.69 / 6.15, 4096 x 4096 41.2 / 36.5, 32768 x
  // 4096 300.8 / 255.6; benchmarks/RESULTS.md, fourteenth session); not for the
  // decode-sized launches of rows of 16384 (K = 4 too), whose one row group a
  // block would not repay the table's copy.
  if (SiluTableEnabled().load() && p.gate != nullptr &&
      p.x_dtype == DType::kBF16 && k == 4 && cluster == 1 &&
      launch->function != nullptr &&
      (p.rows * layout.padded_chunks >= cuda_layout::kThroughputChunks ||
       blocks < row_groups)) {
    const void* table = SelectRmsNorm(p, k, /*split=*/false, /*wide=*/false,
                                      cuda_kernels::kSiluTableForm);
    if (table != nullptr) {
      launch->function = table;
      const int64_t resident =
          ResidentBlocks(table, static_cast<int>(cta_threads), shared_bytes);
      if (resident > 0 && blocks > resident) blocks = resident;
    }
  }
  launch->block[0] = static_cast<uint32_t>(cta_threads);
  if (cluster > 1) launch->cluster = static_cast<uint32_t>(cluster);
  launch->grid[0] = static_cast<uint32_t>(blocks * cluster);
  launch->shared_bytes = shared_bytes;
  // Not for a launch of no rows: its CTAs return before waiting for the grid
  // before them (griddepcontrol.wait), so it could complete first, and the
  // next kernel's wait would no longer cover that grid.
  launch->programmatic_dependency =
      PdlEnabled().load() && p.rows > 0 &&
      (blocks <= kPdlMaxBlocks || wide || spread_bytes > 0);
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
  launch->programmatic_dependency = PdlEnabled().load();
}

void SetRmsNormLayoutOverride(int chunks_per_thread, int block_threads,
                              int max_blocks, int cluster) {
  layout_override_k.store(chunks_per_thread);
  layout_override_block.store(block_threads);
  layout_override_max_blocks.store(max_blocks);
  layout_override_cluster.store(cluster);
}

void SetWideGatedKernels(bool enabled) { wide_gated_kernels.store(enabled); }

void SetSpreadDecodeLaunches(bool enabled) { SpreadEnabled().store(enabled); }

void SetStagedResidualRows(bool enabled) { StagedEnabled().store(enabled); }

void SetSiluTableRows(bool enabled) { SiluTableEnabled().store(enabled); }

void SetProgrammaticDependentLaunch(bool enabled) {
  PdlEnabled().store(enabled);
}

bool ProgrammaticDependentLaunch() { return PdlEnabled().load(); }

std::string DescribeRmsNormLaunch(const RmsNormParams& p) {
  const cuda_layout::RowLayout l = LayoutOf(p);
  CudaLaunch launch;
  PlanRmsNormCuda(&p, &launch);
  char text[176];
  if (!l.register_cached) {
    std::snprintf(text, sizeof text,
                  "streaming G=%lld k=%lld block=%lld grid=%u%s",
                  static_cast<long long>(l.threads_per_row),
                  static_cast<long long>(l.chunks_per_thread),
                  static_cast<long long>(l.block_threads), launch.grid[0],
                  launch.programmatic_dependency ? " pdl" : "");
  } else {
    // The launch's bits of the planned kernel: the subset of them (with the
    // split of a clustered launch) whose kernel it is.
    const int kLaunchBits[] = {
        cuda_kernels::kEmptySlotsForm, cuda_kernels::kStagedForm,
        cuda_kernels::kSiluTableForm, cuda_kernels::kWideForm};
    const int split = launch.cluster > 1 ? cuda_kernels::kSplitForm : 0;
    int bits = 0;
    for (int subset = 0; subset < 16 && launch.function != nullptr; ++subset) {
      int form = split;
      for (int b = 0; b < 4; ++b) {
        if ((subset >> b) & 1) form |= kLaunchBits[b];
      }
      if (launch.function ==
          SelectRmsNormForm(p, l.chunks_per_thread,
                            cuda_kernels::FormOf(p) | form)) {
        bits = form;
        break;
      }
    }
    auto has = [&](int bit) { return (bits & bit) != 0; };
    const bool staged = has(cuda_kernels::kStagedForm);
    std::snprintf(
        text, sizeof text,
        "K=%lld G=%lld rows/block=%lld block=%u grid=%u cluster=%u%s%s%s%s%s%s",
        static_cast<long long>(l.chunks_per_thread),
        static_cast<long long>(l.threads_per_row),
        static_cast<long long>(launch.cluster > 1 ? 1 : l.rows_per_block),
        launch.block[0], launch.grid[0], launch.cluster,
        launch.programmatic_dependency ? " pdl" : "",
        has(cuda_kernels::kWideForm) ? " wide" : "",
        launch.shared_bytes > 0 && !staged ? " spread" : "",
        has(cuda_kernels::kEmptySlotsForm) ? " empty-slots" : "",
        staged ? " staged" : "",
        has(cuda_kernels::kSiluTableForm) ? " silu-table" : "");
  }
  return text;
}

}  // namespace normgraph
