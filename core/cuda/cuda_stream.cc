#include "core/cuda/cuda_stream.h"

#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/cuda/cuda_device_scope.h"
#include "core/cuda/cuda_launch.h"
#include "core/cuda/cuda_status.h"
#include "core/status_macros.h"

namespace normgraph {
namespace {

dim3 Dim(const uint32_t v[3]) { return dim3(v[0], v[1], v[2]); }

std::string FunctionName(const void* function) {
  if (function == nullptr) return "<unknown function>";
  const char* name = nullptr;
  if (cudaFuncGetName(&name, function) != cudaSuccess || name == nullptr) {
    cudaGetLastError();
    return absl::StrFormat("<function %p>", function);
  }
  return name;
}

std::string NodeTypeName(cudaGraphNodeType type) {
  switch (type) {
    case cudaGraphNodeTypeKernel:
      return "kernel";
    case cudaGraphNodeTypeMemcpy:
      return "memcpy";
    case cudaGraphNodeTypeMemset:
      return "memset";
    case cudaGraphNodeTypeHost:
      return "host function";
    case cudaGraphNodeTypeGraph:
      return "child graph";
    case cudaGraphNodeTypeEmpty:
      return "empty";
    case cudaGraphNodeTypeWaitEvent:
      return "event wait";
    case cudaGraphNodeTypeEventRecord:
      return "event record";
    case cudaGraphNodeTypeMemAlloc:
      return "memory allocation";
    case cudaGraphNodeTypeMemFree:
      return "memory free";
    default:
      return absl::StrCat("type ", static_cast<int>(type));
  }
}

// The graph node's function must be the one the launcher planned. The driver
// reports it as the host-side handle the launch used; a cudaFunction_t for the
// same kernel is accepted too.
absl::Status CheckFunction(const void* in_graph, const void* planned,
                           absl::string_view context) {
  if (in_graph == planned) return absl::OkStatus();
  cudaFunction_t handle = nullptr;
  if (cudaGetFuncBySymbol(&handle, planned) == cudaSuccess &&
      in_graph == static_cast<const void*>(handle)) {
    return absl::OkStatus();
  }
  cudaGetLastError();
  return absl::InternalError(
      absl::StrCat(context, ": the graph's node runs ", FunctionName(in_graph),
                   ", the launcher recorded ", FunctionName(planned)));
}

cudaKernelNodeParams KernelNodeParams(const CudaLaunch& plan, void** args) {
  cudaKernelNodeParams p{};
  p.func = const_cast<void*>(plan.function);
  p.gridDim = Dim(plan.grid);
  p.blockDim = Dim(plan.block);
  p.sharedMemBytes = plan.shared_bytes;
  p.kernelParams = args;
  p.extra = nullptr;
  return p;
}

class CudaGraph final : public ExecutableGraph {
 public:
  CudaGraph(std::vector<LaunchRecord> nodes, cudaGraph_t graph,
            cudaGraphExec_t exec, std::vector<cudaGraphNode_t> handles,
            std::vector<CudaLaunch> plans, cudaStream_t stream,
            int device_index)
      : ExecutableGraph(std::move(nodes)),
        graph_(graph),
        exec_(exec),
        handles_(std::move(handles)),
        plans_(std::move(plans)),
        stream_(stream),
        device_index_(device_index) {}

  ~CudaGraph() override {
    // Destruction cannot report; a failure here leaks a graph at worst.
    cudaGraphExecDestroy(exec_);
    cudaGraphDestroy(graph_);
  }

  absl::Status Replay() override {
    NG_ASSIGN_OR_RETURN(
        CudaDeviceScope device,
        CudaDeviceScope::Enter(device_index_, "replaying a graph"));
    NG_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(exec_, stream_),
                            absl::StrCat("a graph of ", nodes_.size(),
                                         " nodes on cuda:", device_index_));
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<absl::InlinedVector<uintptr_t, 8>>>
  ReadBackPointerFields(absl::Span<const uint32_t> only_nodes) const override {
    std::vector<absl::InlinedVector<uintptr_t, 8>> out;
    const size_t count = only_nodes.empty() ? nodes_.size() : only_nodes.size();
    out.reserve(count);
    for (size_t k = 0; k < count; ++k) {
      const size_t i = only_nodes.empty() ? k : only_nodes[k];
      const KernelDef& kernel = *nodes_[i].kernel;
      const std::string context =
          absl::StrFormat("node %d (%s)", i, kernel.name);
      cudaKernelNodeParams p{};
      NG_CUDA_RETURN_IF_ERROR(cudaGraphKernelNodeGetParams(handles_[i], &p),
                              context);
      NG_RETURN_IF_ERROR(CheckFunction(p.func, plans_[i].function, context));
      size_t offset = 0, size = 0;
      NG_CUDA_RETURN_IF_ERROR(
          cudaFuncGetParamInfo(plans_[i].function, 0, &offset, &size), context);
      if (offset != 0 || size != kernel.params_size) {
        return absl::InternalError(absl::StrFormat(
            "%s: the kernel's parameter is %d bytes at offset %d, the "
            "launcher's params are %d bytes",
            context, size, offset, kernel.params_size));
      }
      if (p.kernelParams == nullptr || p.kernelParams[0] == nullptr) {
        return absl::InternalError(
            absl::StrCat(context, ": the driver returned no parameters"));
      }
      const auto* bytes = static_cast<const uint8_t*>(p.kernelParams[0]);
      absl::InlinedVector<uintptr_t, 8> fields;
      for (uint16_t field : kernel.pointer_offsets) {
        uintptr_t value;
        std::memcpy(&value, bytes + field, sizeof value);
        fields.push_back(value);
      }
      out.push_back(std::move(fields));
    }
    return out;
  }

 protected:
  absl::Status WriteNodeParams(size_t node) override {
    LaunchRecord& record = nodes_[node];
    const std::string context =
        absl::StrFormat("rebinding node %d (%s)", node, record.kernel->name);
    // Plans read the current device's attributes: the graph's device.
    NG_ASSIGN_OR_RETURN(CudaDeviceScope device,
                        CudaDeviceScope::Enter(device_index_, context));
    absl::StatusOr<CudaLaunch> plan =
        PlanCudaLaunch(*record.kernel, record.params.data());
    if (!plan.ok()) return plan.status();
    if (*plan != plans_[node]) {
      return absl::InternalError(absl::StrCat(
          context, ": the new parameters plan a different launch (function ",
          FunctionName(plan->function),
          "); a rebind may change pointers only"));
    }
    void* args[] = {record.params.data()};
    const cudaKernelNodeParams p = KernelNodeParams(*plan, args);
    NG_CUDA_RETURN_IF_ERROR(
        cudaGraphExecKernelNodeSetParams(exec_, handles_[node], &p), context);
    NG_CUDA_RETURN_IF_ERROR(cudaGraphKernelNodeSetParams(handles_[node], &p),
                            context);
    return absl::OkStatus();
  }

 private:
  cudaGraph_t graph_;
  cudaGraphExec_t exec_;
  std::vector<cudaGraphNode_t> handles_;
  std::vector<CudaLaunch> plans_;
  cudaStream_t stream_;
  int device_index_;
};

}  // namespace

absl::StatusOr<CudaLaunch> PlanCudaLaunch(const KernelDef& kernel,
                                          const void* params) {
  if (kernel.cuda_plan == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat("kernel ", kernel.name,
                     " has no CUDA implementation (was the binary built with "
                     "--config=cuda?)"));
  }
  CudaLaunch plan;
  kernel.cuda_plan(params, &plan);
  if (plan.function == nullptr) {
    return absl::InternalError(absl::StrCat(
        "kernel ", kernel.name, ": no CUDA function for these params"));
  }
  return plan;
}

absl::StatusOr<std::unique_ptr<CudaStream>> CudaStream::Create(
    int device_index) {
  const std::string context = absl::StrCat("a stream on cuda:", device_index);
  NG_ASSIGN_OR_RETURN(CudaDeviceScope device,
                      CudaDeviceScope::Enter(device_index, context));
  cudaStream_t stream = nullptr;
  NG_CUDA_RETURN_IF_ERROR(
      cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), context);
  return std::unique_ptr<CudaStream>(new CudaStream(device_index, stream));
}

CudaStream::~CudaStream() {
  if (is_capturing()) AbortBackendCapture();
  cudaStreamDestroy(stream_);
}

absl::Status CudaStream::Synchronize() {
  NG_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_),
                          absl::StrCat("the stream on cuda:", device_index_));
  return absl::OkStatus();
}

absl::Status CudaStream::Execute(const KernelDef& kernel, const void* params) {
  // Plans read the current device's attributes, and launches go to it.
  NG_ASSIGN_OR_RETURN(CudaDeviceScope device,
                      CudaDeviceScope::Enter(device_index_, kernel.name));
  absl::StatusOr<CudaLaunch> plan = PlanCudaLaunch(kernel, params);
  if (!plan.ok()) return plan.status();
  void* args[] = {const_cast<void*>(params)};
  NG_CUDA_RETURN_IF_ERROR(LaunchCudaPlan(*plan, args, stream_),
                          absl::StrCat("kernel ", kernel.name));
  return absl::OkStatus();
}

absl::Status CudaStream::CopyBytes(void* dst, const void* src, size_t bytes) {
  NG_ASSIGN_OR_RETURN(CudaDeviceScope device,
                      CudaDeviceScope::Enter(device_index_, "a copy"));
  NG_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_),
      absl::StrCat(bytes, " B on cuda:", device_index_));
  return absl::OkStatus();
}

absl::Status CudaStream::ZeroBytes(void* dst, size_t bytes) {
  NG_ASSIGN_OR_RETURN(CudaDeviceScope device,
                      CudaDeviceScope::Enter(device_index_, "a fill"));
  NG_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(dst, 0, bytes, stream_),
                          absl::StrCat(bytes, " B on cuda:", device_index_));
  return absl::OkStatus();
}

absl::Status CudaStream::BeginBackendCapture() {
  captured_nodes_.clear();
  captured_plans_.clear();
  NG_CUDA_RETURN_IF_ERROR(
      cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal),
      absl::StrCat("the stream on cuda:", device_index_));
  return absl::OkStatus();
}

absl::Status CudaStream::CaptureLaunch(const KernelDef& kernel,
                                       const void* params) {
  NG_ASSIGN_OR_RETURN(CudaDeviceScope device,
                      CudaDeviceScope::Enter(device_index_, kernel.name));
  absl::StatusOr<CudaLaunch> plan = PlanCudaLaunch(kernel, params);
  if (!plan.ok()) return plan.status();
  const std::string context = absl::StrFormat(
      "capturing kernel %s (launch %d)", kernel.name, captured_nodes_.size());
  void* args[] = {const_cast<void*>(params)};
  NG_CUDA_RETURN_IF_ERROR(LaunchCudaPlan(*plan, args, stream_), context);
  cudaStreamCaptureStatus status;
  const cudaGraphNode_t* deps = nullptr;
  size_t num_deps = 0;
  NG_CUDA_RETURN_IF_ERROR(
      cudaStreamGetCaptureInfo(stream_, &status, nullptr, nullptr, &deps,
                               nullptr, &num_deps),
      context);
  if (status != cudaStreamCaptureStatusActive || num_deps != 1) {
    return absl::InternalError(absl::StrFormat(
        "%s: expected an active capture whose last node is this launch, got "
        "status %d with %d dependencies",
        context, static_cast<int>(status), num_deps));
  }
  captured_nodes_.push_back(deps[0]);
  captured_plans_.push_back(*plan);
  return absl::OkStatus();
}

void CudaStream::AbortBackendCapture() {
  cudaGraph_t graph = nullptr;
  if (cudaStreamEndCapture(stream_, &graph) == cudaSuccess &&
      graph != nullptr) {
    cudaGraphDestroy(graph);
  }
  cudaGetLastError();  // an invalidated capture leaves a (non-sticky) error
  captured_nodes_.clear();
  captured_plans_.clear();
}

absl::StatusOr<std::unique_ptr<ExecutableGraph>> CudaStream::Instantiate(
    std::vector<LaunchRecord> nodes) {
  std::vector<cudaGraphNode_t> handles = std::move(captured_nodes_);
  std::vector<CudaLaunch> plans = std::move(captured_plans_);
  captured_nodes_.clear();
  captured_plans_.clear();
  cudaGraph_t graph = nullptr;
  NG_CUDA_RETURN_IF_ERROR(cudaStreamEndCapture(stream_, &graph),
                          absl::StrCat("ending a capture of ", nodes.size(),
                                       " launches on cuda:", device_index_));
  // From here on the graph is ours to destroy on every error path.
  auto destroy = [&graph] {
    if (graph != nullptr) cudaGraphDestroy(graph);
    graph = nullptr;
  };
  if (handles.size() != nodes.size()) {
    destroy();
    return absl::InternalError(
        absl::StrFormat("capture recorded %d launches but %d graph nodes",
                        nodes.size(), handles.size()));
  }
  size_t count = 0;
  cudaError_t error = cudaGraphGetNodes(graph, nullptr, &count);
  std::vector<cudaGraphNode_t> all(count);
  if (error == cudaSuccess && count > 0) {
    error = cudaGraphGetNodes(graph, all.data(), &count);
  }
  if (error != cudaSuccess) {
    destroy();
    return CudaStatus(error, "cudaGraphGetNodes(graph, nodes, &count)",
                      "a captured graph");
  }
  absl::flat_hash_map<cudaGraphNode_t, size_t> recorded;
  for (size_t i = 0; i < handles.size(); ++i) recorded[handles[i]] = i;
  std::vector<std::string> strays;
  for (size_t i = 0; i < all.size(); ++i) {
    if (recorded.contains(all[i])) continue;
    cudaGraphNodeType type;
    std::string what = "node of unknown type";
    if (cudaGraphNodeGetType(all[i], &type) == cudaSuccess) {
      what = absl::StrCat(NodeTypeName(type), " node");
      cudaKernelNodeParams p{};
      if (type == cudaGraphNodeTypeKernel &&
          cudaGraphKernelNodeGetParams(all[i], &p) == cudaSuccess) {
        what = absl::StrCat("kernel node '", FunctionName(p.func), "'");
      }
    }
    cudaGetLastError();
    strays.push_back(absl::StrFormat("graph node %d: a %s", i, what));
  }
  if (!strays.empty()) {
    destroy();
    return absl::FailedPreconditionError(absl::StrCat(
        "capture error: the captured graph holds ", strays.size(),
        strays.size() == 1 ? " node" : " nodes",
        " that normgraph's launcher did not record (work captured from "
        "outside Stream::Launch, which no identity check could cover): ",
        absl::StrJoin(strays, "; ")));
  }
  cudaGraphExec_t exec = nullptr;
  error = cudaGraphInstantiate(&exec, graph, 0);
  if (error != cudaSuccess) {
    destroy();
    return CudaStatus(error, "cudaGraphInstantiate(&exec, graph, 0)",
                      absl::StrCat("a graph of ", nodes.size(), " nodes"));
  }
  return std::unique_ptr<ExecutableGraph>(
      new CudaGraph(std::move(nodes), graph, exec, std::move(handles),
                    std::move(plans), stream_, device_index_));
}

}  // namespace normgraph
