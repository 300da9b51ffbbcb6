#include "core/cuda/pinned_staging.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/cuda/cuda_status.h"

namespace normgraph {

PinnedStaging::~PinnedStaging() {
  absl::MutexLock lock(&mu_);
  if (pinned_ != nullptr) cudaFreeHost(pinned_);
  if (copy_stream_ != nullptr) cudaStreamDestroy(copy_stream_);
}

absl::Status PinnedStaging::Reserve(size_t bytes) {
  const std::string context =
      absl::StrCat("cuda:", device_index_, " pinned staging, ", bytes, " B");
  NG_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_index_), context);
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

absl::Status PinnedStaging::ToDevice(void* device_dst, const void* host_src,
                                     size_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  const std::string context = absl::StrCat(
      "copying ", bytes, " B from the host to cuda:", device_index_);
  NG_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_index_), context);
  NG_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize(), context);
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

absl::Status PinnedStaging::ToHost(void* host_dst, const void* device_src,
                                   size_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  const std::string context = absl::StrCat(
      "copying ", bytes, " B from cuda:", device_index_, " to the host");
  NG_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_index_), context);
  NG_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize(), context);
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

}  // namespace normgraph
