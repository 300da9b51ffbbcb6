#ifndef NORMGRAPH_CORE_CUDA_CUDA_STREAM_H_
#define NORMGRAPH_CORE_CUDA_CUDA_STREAM_H_

// The CUDA backend's stream and graphs.
//
// CudaStream launches each kernel with cudaLaunchKernel on its own
// cudaStream_t, from the KernelDef's CUDA plan (function + shape) and the
// launcher's parameter bytes (the kernel's single POD argument).
//
// Capture is real stream capture: BeginCapture starts
// cudaStreamBeginCapture (thread-local mode), each launch goes into the
// capture, and the graph node CUDA made for it is read right after with
// cudaStreamGetCaptureInfo (its one dependency) and kept beside the
// launcher's LaunchRecord. EndCapture ends the capture, refuses a graph with
// any node the launcher did not make (work captured from outside
// Stream::Launch: a stray kernel, memcpy or memset), and instantiates it.
//
// CudaGraph: Replay is cudaGraphLaunch. A rebind re-marshals the node's
// parameters from the launcher's patched record and applies them with
// cudaGraphExecKernelNodeSetParams to the executable graph and
// cudaGraphKernelNodeSetParams to the template graph (kept in step), never by
// writing into driver-owned memory. The second inventory reads each node back
// from the template graph (cudaGraphKernelNodeGetParams): its function must be
// the planned one and the function's parameter size (cudaFuncGetParamInfo)
// the KernelDef's, and the pointer fields are read from kernelParams[0] at
// the KernelDef's offsets. The driver offers no read-back of an executable
// graph's parameters; that is why the template is kept in step and read.

#include <cuda_runtime.h>

#include <memory>
#include <vector>

#include "core/stream.h"

namespace normgraph {

class CudaStream final : public Stream {
 public:
  // A new non-blocking stream on device `device_index`.
  static absl::StatusOr<std::unique_ptr<CudaStream>> Create(int device_index);
  ~CudaStream() override;

  Device device() const override { return Device::Cuda(device_index_); }
  absl::Status Synchronize() override;

  // The raw stream, for tests that must bypass the launcher.
  cudaStream_t raw() const { return stream_; }

 protected:
  absl::Status Execute(const KernelDef& kernel, const void* params) override;
  absl::Status CopyBytes(void* dst, const void* src, size_t bytes) override;
  absl::Status ZeroBytes(void* dst, size_t bytes) override;
  absl::StatusOr<std::unique_ptr<ExecutableGraph>> Instantiate(
      std::vector<LaunchRecord> nodes) override;
  absl::Status BeginBackendCapture() override;
  absl::Status CaptureLaunch(const KernelDef& kernel,
                             const void* params) override;
  void AbortBackendCapture() override;

 private:
  CudaStream(int device_index, cudaStream_t stream)
      : device_index_(device_index), stream_(stream) {}

  const int device_index_;
  cudaStream_t stream_;
  // The graph node and plan of every launch captured so far, in order.
  std::vector<cudaGraphNode_t> captured_nodes_;
  std::vector<CudaLaunch> captured_plans_;
};

// Plans a launch of `kernel` (an error if it has no CUDA implementation).
absl::StatusOr<CudaLaunch> PlanCudaLaunch(const KernelDef& kernel,
                                          const void* params);

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_CUDA_CUDA_STREAM_H_
