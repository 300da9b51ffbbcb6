#ifndef NORMGRAPH_CORE_CUDA_CUDA_DEVICE_SCOPE_H_
#define NORMGRAPH_CORE_CUDA_CUDA_DEVICE_SCOPE_H_

// CudaDeviceScope: makes one GPU the calling thread's current device for a
// scope and puts the previous one back at its end.
//
// The CUDA runtime keeps one current device per thread, and kernel launches,
// allocations and launch plans (which read the current device's SM count and
// attributes) all use it. Every backend call that works on a given device
// enters its scope, so a caller that works on cuda:1 between two calls on a
// cuda:0 stream changes nothing for the stream, and the backend never leaves
// the caller's thread on another device than it found it.

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace normgraph {

class CudaDeviceScope {
 public:
  // Makes cuda:`index` current (nothing to do if it already is). `context`
  // says what for, in the error.
  static absl::StatusOr<CudaDeviceScope> Enter(int index,
                                               absl::string_view context);

  CudaDeviceScope(CudaDeviceScope&& other) noexcept
      : previous_(other.previous_) {
    other.previous_ = -1;
  }
  CudaDeviceScope& operator=(CudaDeviceScope&&) = delete;
  CudaDeviceScope(const CudaDeviceScope&) = delete;
  CudaDeviceScope& operator=(const CudaDeviceScope&) = delete;
  // Puts the previous device back (an error there has no one to go to: the
  // next call that needs a device sets its own).
  ~CudaDeviceScope();

 private:
  explicit CudaDeviceScope(int previous) : previous_(previous) {}
  int previous_;  // -1: nothing to restore
};

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_CUDA_CUDA_DEVICE_SCOPE_H_
