#include "core/cuda/pinned_staging.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/cuda/cuda_device_scope.h"
#include "core/cuda/cuda_status.h"
#include "core/status_macros.h"

namespace normgraph {
namespace {

// Arena offsets are multiples of this (whole DMA-friendly lines).
constexpr size_t kArenaAlignment = 256;
// The smallest arena a batch makes.
constexpr size_t kMinArena = size_t{1} << 20;

size_t AlignUp(size_t n) {
  return (n + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
}

}  // namespace

// Holds mu_ once no other thread's batch is open: a batch belongs to the
// thread that began it, and another thread's copies (and batches) wait for it
// to end rather than join it (they would be queued in it, and that thread's
// end of its own nested batch would return before they are done).
class PinnedStaging::TransferLock {
 public:
  explicit TransferLock(PinnedStaging& staging)
      ABSL_EXCLUSIVE_LOCK_FUNCTION(staging.mu_)
      : staging_(staging), self_(std::this_thread::get_id()) {
    staging_.mu_.LockWhen(absl::Condition(this, &TransferLock::Free));
  }
  ~TransferLock() ABSL_UNLOCK_FUNCTION() { staging_.mu_.Unlock(); }
  TransferLock(const TransferLock&) = delete;
  TransferLock& operator=(const TransferLock&) = delete;

 private:
  bool Free() const ABSL_NO_THREAD_SAFETY_ANALYSIS {  // called with mu_ held
    return staging_.batch_depth_ == 0 || staging_.batch_owner_ == self_;
  }

  PinnedStaging& staging_;
  const std::thread::id self_;
};

PinnedStaging::~PinnedStaging() {
  absl::MutexLock lock(&mu_);
  if (pinned_ != nullptr) cudaFreeHost(pinned_);
  if (copy_stream_ != nullptr) cudaStreamDestroy(copy_stream_);
}

absl::Status PinnedStaging::Reserve(size_t bytes) {
  const std::string context =
      absl::StrCat("cuda:", device_index_, " pinned staging, ", bytes, " B");
  NG_ASSIGN_OR_RETURN(CudaDeviceScope device,
                      CudaDeviceScope::Enter(device_index_, context));
  if (copy_stream_ == nullptr) {
    NG_CUDA_RETURN_IF_ERROR(
        cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking),
        context);
  }
  if (bytes <= capacity_) return absl::OkStatus();
  if (pinned_ != nullptr) {
    NG_CUDA_RETURN_IF_ERROR(cudaFreeHost(pinned_), context);
    pinned_ = nullptr;
    capacity_ = 0;
  }
  NG_CUDA_RETURN_IF_ERROR(cudaMallocHost(&pinned_, bytes), context);
  capacity_ = bytes;
  return absl::OkStatus();
}

absl::Status PinnedStaging::CopyToDevice(void* device_dst, const void* host_src,
                                         size_t bytes,
                                         const std::string& context) {
  const size_t chunk = std::min(bytes, kMaxChunk);
  absl::Status reserved = Reserve(chunk);
  if (!reserved.ok()) return reserved;
  for (size_t done = 0; done < bytes; done += chunk) {
    const size_t n = std::min(chunk, bytes - done);
    std::memcpy(pinned_, static_cast<const char*>(host_src) + done, n);
    NG_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(static_cast<char*>(device_dst) + done, pinned_, n,
                        cudaMemcpyHostToDevice, copy_stream_),
        context);
    NG_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(copy_stream_), context);
  }
  return absl::OkStatus();
}

absl::Status PinnedStaging::CopyToHost(void* host_dst, const void* device_src,
                                       size_t bytes,
                                       const std::string& context) {
  const size_t chunk = std::min(bytes, kMaxChunk);
  absl::Status reserved = Reserve(chunk);
  if (!reserved.ok()) return reserved;
  for (size_t done = 0; done < bytes; done += chunk) {
    const size_t n = std::min(chunk, bytes - done);
    NG_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(pinned_, static_cast<const char*>(device_src) + done, n,
                        cudaMemcpyDeviceToHost, copy_stream_),
        context);
    NG_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(copy_stream_), context);
    std::memcpy(static_cast<char*>(host_dst) + done, pinned_, n);
  }
  return absl::OkStatus();
}

void PinnedStaging::ForgetStaged() {
  staged_.Clear();
  arena_used_ = 0;
  reads_queued_ = false;
}

absl::Status PinnedStaging::CompleteQueued(const std::string& context) {
  // The arena starts over even when the wait fails (the records would name
  // copies in an unknown state): outside a batch it is always empty, so a
  // batch begins with no records.
  ForgetStaged();
  if (copy_stream_ != nullptr) {
    NG_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(copy_stream_), context);
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> PinnedStaging::ArenaSlot(size_t bytes,
                                                const std::string& context) {
  if (arena_used_ + bytes > capacity_) {
    absl::Status completed = CompleteQueued(context);
    if (!completed.ok()) return completed;
    if (bytes > capacity_) {
      absl::Status reserved = Reserve(
          std::min(kMaxChunk, std::max({bytes, 2 * capacity_, kMinArena})));
      if (!reserved.ok()) return reserved;
    }
  }
  const size_t offset = arena_used_;
  arena_used_ = std::min(capacity_, arena_used_ + AlignUp(bytes));
  return offset;
}

absl::Status PinnedStaging::ToDevice(void* device_dst, const void* host_src,
                                     size_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  TransferLock lock(*this);
  const std::string context = absl::StrCat(
      "copying ", bytes, " B from the host to cuda:", device_index_);
  NG_ASSIGN_OR_RETURN(CudaDeviceScope device,
                      CudaDeviceScope::Enter(device_index_, context));
  if (batch_depth_ == 0) {
    NG_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize(), context);
    return CopyToDevice(device_dst, host_src, bytes, context);
  }
  if (bytes > kMaxChunk) {
    absl::Status completed = CompleteQueued(context);
    if (!completed.ok()) return completed;
    return CopyToDevice(device_dst, host_src, bytes, context);
  }
  absl::StatusOr<size_t> offset = ArenaSlot(bytes, context);
  if (!offset.ok()) return offset.status();
  char* staged = static_cast<char*>(pinned_) + *offset;
  std::memcpy(staged, host_src, bytes);
  NG_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(device_dst, staged, bytes,
                                          cudaMemcpyHostToDevice, copy_stream_),
                          context);
  staged_.Add(device_dst, bytes, *offset, StagedTransfers::Kind::kWritten);
  return absl::OkStatus();
}

absl::Status PinnedStaging::ToHost(void* host_dst, const void* device_src,
                                   size_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  TransferLock lock(*this);
  const std::string context = absl::StrCat(
      "copying ", bytes, " B from cuda:", device_index_, " to the host");
  NG_ASSIGN_OR_RETURN(CudaDeviceScope device,
                      CudaDeviceScope::Enter(device_index_, context));
  if (batch_depth_ == 0) {
    NG_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize(), context);
    return CopyToHost(host_dst, device_src, bytes, context);
  }
  if (const auto hit = staged_.Find(device_src, bytes); hit.has_value()) {
    // Staged bytes: what the batch wrote there, or a queued read's result
    // once the queued copies are done.
    if (hit->kind == StagedTransfers::Kind::kFetched && reads_queued_) {
      NG_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(copy_stream_), context);
      reads_queued_ = false;
    }
    std::memcpy(host_dst, static_cast<const char*>(pinned_) + hit->arena_offset,
                bytes);
    return absl::OkStatus();
  }
  if (bytes > kMaxChunk) {
    absl::Status completed = CompleteQueued(context);
    if (!completed.ok()) return completed;
    return CopyToHost(host_dst, device_src, bytes, context);
  }
  // Queued behind the batch's earlier copies, then waited for with them.
  absl::StatusOr<size_t> offset = ArenaSlot(bytes, context);
  if (!offset.ok()) return offset.status();
  char* staged = static_cast<char*>(pinned_) + *offset;
  NG_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(staged, device_src, bytes,
                                          cudaMemcpyDeviceToHost, copy_stream_),
                          context);
  NG_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(copy_stream_), context);
  reads_queued_ = false;
  std::memcpy(host_dst, staged, bytes);
  staged_.Add(device_src, bytes, *offset, StagedTransfers::Kind::kFetched);
  return absl::OkStatus();
}

absl::Status PinnedStaging::BeginBatch() {
  TransferLock lock(*this);
  if (batch_depth_ > 0) {
    ++batch_depth_;
    return absl::OkStatus();
  }
  const std::string context =
      absl::StrCat("beginning a transfer batch on cuda:", device_index_);
  NG_ASSIGN_OR_RETURN(CudaDeviceScope device,
                      CudaDeviceScope::Enter(device_index_, context));
  NG_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize(), context);
  absl::Status reserved = Reserve(kMinArena);
  if (!reserved.ok()) return reserved;
  // The arena is empty: the last batch's end (CompleteQueued) started it over.
  batch_depth_ = 1;  // only once begun: a failed begin needs no end
  batch_owner_ = std::this_thread::get_id();
  return absl::OkStatus();
}

absl::Status PinnedStaging::Prefetch(const void* device_src, size_t bytes) {
  TransferLock lock(*this);
  if (batch_depth_ == 0 || bytes == 0 || bytes > kMaxChunk ||
      staged_.Find(device_src, bytes).has_value()) {
    return absl::OkStatus();
  }
  const std::string context = absl::StrCat("queueing a read of ", bytes,
                                           " B from cuda:", device_index_);
  NG_ASSIGN_OR_RETURN(CudaDeviceScope device,
                      CudaDeviceScope::Enter(device_index_, context));
  absl::StatusOr<size_t> offset = ArenaSlot(bytes, context);
  if (!offset.ok()) return offset.status();
  NG_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(static_cast<char*>(pinned_) + *offset, device_src, bytes,
                      cudaMemcpyDeviceToHost, copy_stream_),
      context);
  staged_.Add(device_src, bytes, *offset, StagedTransfers::Kind::kFetched);
  reads_queued_ = true;
  return absl::OkStatus();
}

absl::Status PinnedStaging::EndBatch() {
  TransferLock lock(*this);
  if (batch_depth_ == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cuda:", device_index_, ": EndTransfers without BeginTransfers"));
  }
  if (--batch_depth_ > 0) return absl::OkStatus();
  const std::string context =
      absl::StrCat("completing a transfer batch on cuda:", device_index_);
  absl::StatusOr<CudaDeviceScope> device =
      CudaDeviceScope::Enter(device_index_, context);
  if (!device.ok()) {
    // The batch is over either way: no record of it may answer a later read.
    ForgetStaged();
    return device.status();
  }
  return CompleteQueued(context);
}

}  // namespace normgraph
