// The CUDA device runtime (core/runtime.h): registered at start-up in every
// binary that links this library, so `--device=cuda` works there.

#include <cuda_runtime.h>

#include <memory>

#include "absl/strings/str_format.h"
#include "core/cuda/cuda_allocator.h"
#include "core/cuda/cuda_device_scope.h"
#include "core/cuda/cuda_status.h"
#include "core/cuda/cuda_stream.h"
#include "core/cuda/pinned_staging.h"
#include "core/runtime.h"
#include "core/status_macros.h"

namespace normgraph {
namespace {

class CudaDeviceRuntime final : public DeviceRuntime {
 public:
  CudaDeviceRuntime(int index, std::string description)
      : index_(index),
        description_(std::move(description)),
        allocator_(index),
        staging_(index) {}

  Device device() const override { return Device::Cuda(index_); }
  std::string Describe() const override { return description_; }
  Allocator& allocator() override { return allocator_; }

  absl::StatusOr<std::unique_ptr<Stream>> NewStream() override {
    absl::StatusOr<std::unique_ptr<CudaStream>> stream =
        CudaStream::Create(index_);
    if (!stream.ok()) return stream.status();
    return std::unique_ptr<Stream>(std::move(*stream));
  }

  absl::Status Synchronize() override {
    NG_ASSIGN_OR_RETURN(CudaDeviceScope device,
                        CudaDeviceScope::Enter(index_, description_));
    NG_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize(), description_);
    return absl::OkStatus();
  }

  absl::Status CopyFromHost(void* device_dst, const void* host_src,
                            size_t bytes) override {
    return staging_.ToDevice(device_dst, host_src, bytes);
  }
  absl::Status CopyToHost(void* host_dst, const void* device_src,
                          size_t bytes) override {
    return staging_.ToHost(host_dst, device_src, bytes);
  }
  absl::Status BeginTransfers() override { return staging_.BeginBatch(); }
  absl::Status PrefetchToHost(const void* device_src, size_t bytes) override {
    return staging_.Prefetch(device_src, bytes);
  }
  absl::Status EndTransfers() override { return staging_.EndBatch(); }

 private:
  const int index_;
  const std::string description_;
  CachingCudaAllocator allocator_;
  PinnedStaging staging_;
};

absl::StatusOr<DeviceRuntime*> MakeCudaRuntime(int index) {
  const std::string what = absl::StrCat("cuda:", index);
  int count = 0;
  NG_CUDA_RETURN_IF_ERROR(cudaGetDeviceCount(&count),
                          absl::StrCat("opening ", what));
  if (index >= count) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "device %s does not exist: this machine has %d CUDA device%s", what,
        count, count == 1 ? "" : "s"));
  }
  // Entering the device creates its context; the caller's device stays.
  NG_ASSIGN_OR_RETURN(
      CudaDeviceScope device,
      CudaDeviceScope::Enter(index, absl::StrCat("opening ", what)));
  cudaDeviceProp prop;
  NG_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, index),
                          absl::StrCat("opening ", what));
  // Created once per device and kept for the life of the process (streams and
  // storages hold on to its allocator).
  return new CudaDeviceRuntime(
      index,
      absl::StrFormat("%s (%s, sm_%d%d, %.1f GiB)", what, prop.name, prop.major,
                      prop.minor, prop.totalGlobalMem / 1073741824.0));
}

[[maybe_unused]] const bool registered =
    RegisterRuntimeFactory(DeviceType::kCuda, &MakeCudaRuntime);

}  // namespace
}  // namespace normgraph
