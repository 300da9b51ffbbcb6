#include "audit/graph_scan.h"

#include <algorithm>

#include "audit/argument_words.h"
#include "audit/demangle.h"
#include "audit/kernel_info.h"
#include "audit/pointer_probe.h"

namespace normgraph::audit {

static_assert(kLaunchParamEnd == CU_LAUNCH_PARAM_END_AS_INT);
static_assert(kLaunchParamBufferPointer ==
              CU_LAUNCH_PARAM_BUFFER_POINTER_AS_INT);
static_assert(kLaunchParamBufferSize == CU_LAUNCH_PARAM_BUFFER_SIZE_AS_INT);

namespace {

// Child graphs nest at most this deep (a guard, not a CUDA limit).
constexpr uint32_t kMaxDepth = 64;

class GraphWalker {
 public:
  GraphWalker(const DriverApi& api, const RangeRegistry& ranges,
              ScanResult* out)
      : api_(api), ranges_(ranges), probe_(api), out_(out) {}

  Status Walk(CUgraph graph, uint32_t depth);

 private:
  NodeRecord& NewNode(CUgraphNodeType type, uint32_t depth);
  void ScanKernel(CUgraphNode node, NodeRecord& record);
  void ScanMemcpy(CUgraphNode node, NodeRecord& record);
  void ScanMemset(CUgraphNode node, NodeRecord& record);
  // Records a reference for each registered range that holds `value`, or an
  // unregistered one if the driver knows the address. Notes on the record
  // an address that could not be classified.
  void AddAddress(NodeRecord& record, ngaudit_field field, int32_t param_index,
                  uint32_t param_offset, uint32_t word_offset, uint64_t value);
  static std::string Where(const NodeRecord& record) {
    return "node " + std::to_string(record.index);
  }
  static void Fail(NodeRecord& record, const std::string& why) {
    record.scanned = false;
    if (record.note.empty()) record.note = why;
  }

  const DriverApi& api_;
  const RangeRegistry& ranges_;
  PointerProbe probe_;
  ScanResult* out_;
  std::vector<RangeMatch> matches_;  // scratch
  std::vector<ArgumentWord> words_;  // scratch
};

Status GraphWalker::Walk(CUgraph graph, uint32_t depth) {
  const std::string where =
      depth == 0
          ? std::string("the graph")
          : "the child graph of node " + std::to_string(out_->nodes.size() - 1);
  if (depth > kMaxDepth) {
    return Status(NGAUDIT_INTERNAL, where + " nests child graphs deeper than " +
                                        std::to_string(kMaxDepth));
  }
  size_t count = 0;
  NGAUDIT_CU_RETURN_IF_ERROR(api_, api_.cuGraphGetNodes(graph, nullptr, &count),
                             where);
  std::vector<CUgraphNode> nodes(count);
  if (count > 0) {
    NGAUDIT_CU_RETURN_IF_ERROR(
        api_, api_.cuGraphGetNodes(graph, nodes.data(), &count), where);
    nodes.resize(count);
  }
  for (CUgraphNode node : nodes) {
    CUgraphNodeType type;
    NGAUDIT_CU_RETURN_IF_ERROR(
        api_, api_.cuGraphNodeGetType(node, &type),
        "node " + std::to_string(out_->nodes.size()) + " of " + where);
    NodeRecord& record = NewNode(type, depth);
    switch (type) {
      case CU_GRAPH_NODE_TYPE_KERNEL:
        ScanKernel(node, record);
        break;
      case CU_GRAPH_NODE_TYPE_MEMCPY:
        ScanMemcpy(node, record);
        break;
      case CU_GRAPH_NODE_TYPE_MEMSET:
        ScanMemset(node, record);
        break;
      case CU_GRAPH_NODE_TYPE_GRAPH: {
        record.kind = NGAUDIT_NODE_CHILD_GRAPH;
        record.scanned = true;
        CUgraph child = nullptr;
        NGAUDIT_CU_RETURN_IF_ERROR(
            api_, api_.cuGraphChildGraphNodeGetGraph(node, &child),
            Where(record));
        NGAUDIT_RETURN_IF_ERROR(Walk(child, depth + 1));
        break;
      }
      case CU_GRAPH_NODE_TYPE_CONDITIONAL:
        Fail(record, "conditional node: its body graphs are not walked");
        break;
      default:
        record.scanned = true;  // holds no tensor addresses
        break;
    }
  }
  return Status();
}

NodeRecord& GraphWalker::NewNode(CUgraphNodeType type, uint32_t depth) {
  NodeRecord record;
  record.index = static_cast<uint32_t>(out_->nodes.size());
  record.driver_type = static_cast<int32_t>(type);
  record.depth = depth;
  record.name = NodeTypeName(type);
  record.display_name = record.name;
  out_->nodes.push_back(std::move(record));
  return out_->nodes.back();
}

void GraphWalker::ScanKernel(CUgraphNode node, NodeRecord& record) {
  record.kind = NGAUDIT_NODE_KERNEL;
  record.scanned = true;
  CUDA_KERNEL_NODE_PARAMS params{};
  const CUresult got = api_.cuGraphKernelNodeGetParams(node, &params);
  if (got != CUDA_SUCCESS) {
    return Fail(record, api_.Describe(got, "cuGraphKernelNodeGetParams",
                                      Where(record)));
  }
  KernelInfo kernel;
  const Status described = DescribeKernel(api_, params, Where(record), &kernel);
  if (!kernel.name.empty()) {
    record.name = kernel.name;
    record.display_name = Demangle(kernel.name.c_str());
  }
  if (!described.ok()) return Fail(record, described.message());
  record.param_count = static_cast<uint32_t>(kernel.params.size());
  for (const ParamLayout& p : kernel.params) {
    record.argument_bytes = std::max(record.argument_bytes, p.offset + p.size);
  }
  if (kernel.params.empty()) return;
  ArgumentValues values;
  if (params.kernelParams != nullptr) {
    values.per_param = params.kernelParams;
  } else if (params.extra != nullptr) {
    const Status parsed = ParseLaunchExtra(params.extra, &values);
    if (!parsed.ok())
      return Fail(record, Where(record) + ": " + parsed.message());
  } else {
    return Fail(record, "the driver gave no argument values");
  }
  words_.clear();
  const Status read = ReadArgumentWords(kernel.params, values, &words_);
  if (!read.ok()) return Fail(record, Where(record) + ": " + read.message());
  for (const ArgumentWord& word : words_) {
    if (word.value == 0) continue;
    AddAddress(record, NGAUDIT_FIELD_KERNEL_ARGUMENT, word.param_index,
               word.param_offset, word.word_offset, word.value);
  }
}

// The first byte a memcpy side touches, or 0 for arrays (no address).
uint64_t CopyAddress(CUmemorytype type, const void* host, CUdeviceptr device,
                     size_t x, size_t y, size_t z, size_t pitch,
                     size_t height) {
  uint64_t base = 0;
  switch (type) {
    case CU_MEMORYTYPE_HOST:
      base = reinterpret_cast<uint64_t>(host);
      break;
    case CU_MEMORYTYPE_DEVICE:
    case CU_MEMORYTYPE_UNIFIED:
      base = static_cast<uint64_t>(device);
      break;
    default:
      return 0;
  }
  if (base == 0) return 0;
  return base + x + (y + z * height) * pitch;
}

void GraphWalker::ScanMemcpy(CUgraphNode node, NodeRecord& record) {
  record.kind = NGAUDIT_NODE_MEMCPY;
  record.scanned = true;
  CUDA_MEMCPY3D copy{};
  const CUresult got = api_.cuGraphMemcpyNodeGetParams(node, &copy);
  if (got != CUDA_SUCCESS) {
    return Fail(record, api_.Describe(got, "cuGraphMemcpyNodeGetParams",
                                      Where(record)));
  }
  const uint64_t source = CopyAddress(
      copy.srcMemoryType, copy.srcHost, copy.srcDevice, copy.srcXInBytes,
      copy.srcY, copy.srcZ, copy.srcPitch, copy.srcHeight);
  const uint64_t destination = CopyAddress(
      copy.dstMemoryType, copy.dstHost, copy.dstDevice, copy.dstXInBytes,
      copy.dstY, copy.dstZ, copy.dstPitch, copy.dstHeight);
  if (source != 0) {
    AddAddress(record, NGAUDIT_FIELD_MEMCPY_SOURCE, -1, 0, 0, source);
  }
  if (destination != 0) {
    AddAddress(record, NGAUDIT_FIELD_MEMCPY_DESTINATION, -1, 0, 0, destination);
  }
}

void GraphWalker::ScanMemset(CUgraphNode node, NodeRecord& record) {
  record.kind = NGAUDIT_NODE_MEMSET;
  record.scanned = true;
  CUDA_MEMSET_NODE_PARAMS set{};
  const CUresult got = api_.cuGraphMemsetNodeGetParams(node, &set);
  if (got != CUDA_SUCCESS) {
    return Fail(record, api_.Describe(got, "cuGraphMemsetNodeGetParams",
                                      Where(record)));
  }
  if (set.dst != 0) {
    AddAddress(record, NGAUDIT_FIELD_MEMSET_DESTINATION, -1, 0, 0, set.dst);
  }
}

void GraphWalker::AddAddress(NodeRecord& record, ngaudit_field field,
                             int32_t param_index, uint32_t param_offset,
                             uint32_t word_offset, uint64_t value) {
  ngaudit_reference ref{};
  ref.address = value;
  ref.node_index = record.index;
  ref.field = field;
  ref.param_index = param_index;
  ref.param_offset = param_offset;
  ref.word_offset = word_offset;
  matches_.clear();
  ranges_.Find(value, &matches_);
  if (!matches_.empty()) {
    ref.registered = 1;
    for (const RangeMatch& match : matches_) {
      ref.range_id = match.id;
      ref.offset = match.offset;
      out_->references.push_back(ref);
    }
    return;
  }
  PointerInfo info;
  const Status probed = probe_.Probe(value, &info);
  if (!probed.ok()) return Fail(record, probed.message());
  if (info.known) {
    ref.memory_type = info.memory_type;
    ref.allocation_base = info.allocation_base;
    ref.allocation_bytes = info.allocation_bytes;
    out_->references.push_back(ref);
  }
}

}  // namespace

const char* NodeTypeName(CUgraphNodeType type) {
  switch (type) {
    case CU_GRAPH_NODE_TYPE_KERNEL:
      return "kernel";
    case CU_GRAPH_NODE_TYPE_MEMCPY:
      return "memcpy";
    case CU_GRAPH_NODE_TYPE_MEMSET:
      return "memset";
    case CU_GRAPH_NODE_TYPE_HOST:
      return "host";
    case CU_GRAPH_NODE_TYPE_GRAPH:
      return "child_graph";
    case CU_GRAPH_NODE_TYPE_EMPTY:
      return "empty";
    case CU_GRAPH_NODE_TYPE_WAIT_EVENT:
      return "wait_event";
    case CU_GRAPH_NODE_TYPE_EVENT_RECORD:
      return "event_record";
    case CU_GRAPH_NODE_TYPE_EXT_SEMAS_SIGNAL:
      return "external_semaphore_signal";
    case CU_GRAPH_NODE_TYPE_EXT_SEMAS_WAIT:
      return "external_semaphore_wait";
    case CU_GRAPH_NODE_TYPE_MEM_ALLOC:
      return "mem_alloc";
    case CU_GRAPH_NODE_TYPE_MEM_FREE:
      return "mem_free";
    case CU_GRAPH_NODE_TYPE_BATCH_MEM_OP:
      return "batch_mem_op";
    case CU_GRAPH_NODE_TYPE_CONDITIONAL:
      return "conditional";
    default:
      return "unknown";
  }
}

Status ScanGraph(const DriverApi& api, CUgraph graph,
                 const RangeRegistry& ranges, ScanResult* out) {
  *out = ScanResult();
  if (graph == nullptr) return InvalidArgument("the graph is null");
  GraphWalker walker(api, ranges, out);
  const Status walked = walker.Walk(graph, 0);
  if (!walked.ok()) *out = ScanResult();
  return walked;
}

}  // namespace normgraph::audit
