#include "core/cuda/cuda_launch.h"

namespace normgraph {

cudaError_t LaunchCudaPlan(const CudaLaunch& plan, void** args,
                           cudaStream_t stream) {
  cudaLaunchAttribute attributes[2];
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(plan.grid[0], plan.grid[1], plan.grid[2]);
  config.blockDim = dim3(plan.block[0], plan.block[1], plan.block[2]);
  config.dynamicSmemBytes = plan.shared_bytes;
  config.stream = stream;
  config.attrs = attributes;
  if (plan.programmatic_dependency) {
    cudaLaunchAttribute& a = attributes[config.numAttrs++];
    a.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    a.val.programmaticStreamSerializationAllowed = 1;
  }
  if (plan.cluster > 1) {
    cudaLaunchAttribute& a = attributes[config.numAttrs++];
    a.id = cudaLaunchAttributeClusterDimension;
    a.val.clusterDim.x = plan.cluster;
    a.val.clusterDim.y = 1;
    a.val.clusterDim.z = 1;
  }
  return cudaLaunchKernelExC(&config, plan.function, args);
}

}  // namespace normgraph
