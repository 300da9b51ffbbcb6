// The C ABI against a graph captured with the CUDA runtime (GPU host only):
// every pointer argument, in plain parameters, inside a struct, in memset and
// memcpy nodes and in a child graph, is found and attributed to its range;
// integers and floats are not; unregistered device memory is reported with
// its allocation; errors are statuses with messages.

#include <cuda.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "audit/c_api_test_kernels.h"
#include "audit/normgraph_audit.h"
#include "gtest/gtest.h"

namespace normgraph::audit {
namespace {

using testing::LaunchAuditTestKernel;
using testing::PointerPair;

#define CUDA_ASSERT(expr)                                                   \
  do {                                                                      \
    const cudaError_t err_ = (expr);                                        \
    ASSERT_EQ(err_, cudaSuccess) << #expr << ": " << cudaGetErrorName(err_) \
                                 << " " << cudaGetErrorString(err_);        \
  } while (0)

#define NGAUDIT_ASSERT(auditor, expr)                            \
  do {                                                           \
    const int status_ = (expr);                                  \
    ASSERT_EQ(status_, NGAUDIT_OK)                               \
        << #expr << ": " << ngaudit_status_name(status_) << ": " \
        << ngaudit_last_error(auditor);                          \
  } while (0)

constexpr int kN = 256;
constexpr size_t kBytes = kN * sizeof(float);

// Range ids.
enum : uint64_t { kW = 1, kOut = 2, kA = 3, kMemsetDst = 4, kWView = 5 };

class CApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int devices = 0;
    CUDA_ASSERT(cudaGetDeviceCount(&devices));
    ASSERT_GT(devices, 0);
    for (float** p : {&w_, &out_, &a_, &b_, &memset_dst_, &memcpy_dst_}) {
      CUDA_ASSERT(cudaMalloc(p, kBytes));
      buffers_.push_back(*p);
    }
    CUDA_ASSERT(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ASSERT_EQ(ngaudit_create(&auditor_), NGAUDIT_OK);
  }

  void TearDown() override {
    ngaudit_destroy(auditor_);
    if (graph_ != nullptr) {
      EXPECT_EQ(cudaGraphDestroy(graph_), cudaSuccess);
    }
    if (stream_ != nullptr) {
      EXPECT_EQ(cudaStreamDestroy(stream_), cudaSuccess);
    }
    for (float* p : buffers_) EXPECT_EQ(cudaFree(p), cudaSuccess);
  }

  // kernel(w, out, n, {a, n, b}, 2); kernel(w + 4, ...); memset; memcpy w ->
  // memcpy_dst.
  void Capture() {
    CUDA_ASSERT(
        cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    const PointerPair pair{a_, kN, b_};
    CUDA_ASSERT(LaunchAuditTestKernel(w_, out_, kN, pair, 2.0f, stream_));
    CUDA_ASSERT(
        LaunchAuditTestKernel(w_ + 4, out_, kN - 4, pair, 3.0f, stream_));
    CUDA_ASSERT(cudaMemsetAsync(memset_dst_, 0, kBytes, stream_));
    CUDA_ASSERT(cudaMemcpyAsync(memcpy_dst_, w_, kBytes,
                                cudaMemcpyDeviceToDevice, stream_));
    CUDA_ASSERT(cudaStreamEndCapture(stream_, &graph_));
  }

  void RegisterAll() {
    NGAUDIT_ASSERT(auditor_,
                   ngaudit_register_range(auditor_, kW, Address(w_), kBytes));
    NGAUDIT_ASSERT(auditor_, ngaudit_register_range(auditor_, kOut,
                                                    Address(out_), kBytes));
    NGAUDIT_ASSERT(auditor_,
                   ngaudit_register_range(auditor_, kA, Address(a_), kBytes));
    NGAUDIT_ASSERT(auditor_,
                   ngaudit_register_range(auditor_, kMemsetDst,
                                          Address(memset_dst_), kBytes));
  }

  std::vector<ngaudit_node> Nodes() {
    std::vector<ngaudit_node> nodes(ngaudit_node_count(auditor_));
    EXPECT_EQ(ngaudit_get_nodes(auditor_, 0, nodes.size(), nodes.data(),
                                sizeof(ngaudit_node)),
              NGAUDIT_OK);
    return nodes;
  }

  std::vector<ngaudit_reference> References() {
    std::vector<ngaudit_reference> refs(ngaudit_reference_count(auditor_));
    EXPECT_EQ(ngaudit_get_references(auditor_, 0, refs.size(), refs.data(),
                                     sizeof(ngaudit_reference)),
              NGAUDIT_OK);
    return refs;
  }

  static uint64_t Address(const void* p) {
    return reinterpret_cast<uint64_t>(p);
  }

  std::vector<float*> buffers_;
  float *w_ = nullptr, *out_ = nullptr, *a_ = nullptr, *b_ = nullptr;
  float *memset_dst_ = nullptr, *memcpy_dst_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaGraph_t graph_ = nullptr;
  ngaudit_auditor* auditor_ = nullptr;
};

TEST_F(CApiTest, FindsEveryPointerArgumentOfACapturedGraph) {
  ASSERT_NO_FATAL_FAILURE(Capture());
  ASSERT_NO_FATAL_FAILURE(RegisterAll());
  NGAUDIT_ASSERT(auditor_, ngaudit_scan_graph(auditor_, graph_));
  EXPECT_STREQ(ngaudit_last_error(auditor_), "");

  const std::vector<ngaudit_node> nodes = Nodes();
  ASSERT_EQ(nodes.size(), 4u);
  std::vector<uint32_t> kernels;
  uint32_t memset_node = UINT32_MAX, memcpy_node = UINT32_MAX;
  for (const ngaudit_node& node : nodes) {
    EXPECT_EQ(node.scanned, 1u) << node.name << ": " << node.note;
    EXPECT_STREQ(node.note, "");
    EXPECT_EQ(node.depth, 0u);
    if (node.kind == NGAUDIT_NODE_KERNEL) {
      kernels.push_back(node.index);
      EXPECT_NE(std::string(node.name).find(testing::kAuditTestKernelName),
                std::string::npos)
          << node.name;
      EXPECT_NE(
          std::string(node.display_name)
              .find(
                  "normgraph::audit::testing::audit_test_kernel(float const*, "
                  "float*, int, normgraph::audit::testing::PointerPair, "
                  "float)"),
          std::string::npos)
          << node.display_name;
      EXPECT_EQ(node.param_count, 5u);
      EXPECT_EQ(node.argument_bytes, 52u);  // alpha ends at 48 + 4
      EXPECT_EQ(node.driver_type, CU_GRAPH_NODE_TYPE_KERNEL);
    } else if (node.kind == NGAUDIT_NODE_MEMSET) {
      memset_node = node.index;
      EXPECT_STREQ(node.name, "memset");
    } else if (node.kind == NGAUDIT_NODE_MEMCPY) {
      memcpy_node = node.index;
      EXPECT_STREQ(node.name, "memcpy");
    }
  }
  ASSERT_EQ(kernels.size(), 2u);
  ASSERT_NE(memset_node, UINT32_MAX);
  ASSERT_NE(memcpy_node, UINT32_MAX);

  // Per kernel: w (param 0 @0), out (param 1 @8), pair.a (param 3 @24),
  // pair.b (param 3 @40, unregistered). n, pair.n and alpha are no pointers.
  const std::vector<ngaudit_reference> refs = References();
  for (uint32_t k = 0; k < 2; ++k) {
    std::vector<ngaudit_reference> mine;
    for (const ngaudit_reference& r : refs) {
      if (r.node_index == kernels[k]) mine.push_back(r);
    }
    ASSERT_EQ(mine.size(), 4u) << "kernel node " << kernels[k];
    EXPECT_EQ(mine[0].field, NGAUDIT_FIELD_KERNEL_ARGUMENT);
    EXPECT_EQ(mine[0].registered, 1u);
    EXPECT_EQ(mine[0].range_id, kW);
    EXPECT_EQ(mine[0].param_index, 0);
    EXPECT_EQ(mine[0].word_offset, 0u);
    // The second launch passes w + 4: 16 bytes into the range.
    EXPECT_EQ(mine[0].offset, k == 0 ? 0u : 16u);
    EXPECT_EQ(mine[0].address, Address(w_) + mine[0].offset);
    EXPECT_EQ(mine[1].range_id, kOut);
    EXPECT_EQ(mine[1].param_index, 1);
    EXPECT_EQ(mine[1].word_offset, 8u);
    EXPECT_EQ(mine[2].range_id, kA);
    EXPECT_EQ(mine[2].param_index, 3);
    EXPECT_EQ(mine[2].param_offset, 24u);
    EXPECT_EQ(mine[2].word_offset, 24u);
    EXPECT_EQ(mine[3].registered, 0u);
    EXPECT_EQ(mine[3].address, Address(b_));
    EXPECT_EQ(mine[3].param_index, 3);
    EXPECT_EQ(mine[3].word_offset, 40u);
    EXPECT_EQ(mine[3].memory_type, static_cast<uint32_t>(CU_MEMORYTYPE_DEVICE));
    EXPECT_EQ(mine[3].allocation_base, Address(b_));
    EXPECT_GE(mine[3].allocation_bytes, kBytes);
  }

  // memset: its destination; memcpy: source w (registered), destination
  // memcpy_dst (unregistered device memory).
  std::vector<ngaudit_reference> set, copy;
  for (const ngaudit_reference& r : refs) {
    if (r.node_index == memset_node) set.push_back(r);
    if (r.node_index == memcpy_node) copy.push_back(r);
  }
  ASSERT_EQ(set.size(), 1u);
  EXPECT_EQ(set[0].field, NGAUDIT_FIELD_MEMSET_DESTINATION);
  EXPECT_EQ(set[0].range_id, kMemsetDst);
  EXPECT_EQ(set[0].param_index, -1);
  ASSERT_EQ(copy.size(), 2u);
  EXPECT_EQ(copy[0].field, NGAUDIT_FIELD_MEMCPY_SOURCE);
  EXPECT_EQ(copy[0].range_id, kW);
  EXPECT_EQ(copy[0].registered, 1u);
  EXPECT_EQ(copy[1].field, NGAUDIT_FIELD_MEMCPY_DESTINATION);
  EXPECT_EQ(copy[1].registered, 0u);
  EXPECT_EQ(copy[1].address, Address(memcpy_dst_));
  EXPECT_EQ(refs.size(), 8u + 1u + 2u);
}

TEST_F(CApiTest, OverlappingRangesEachGetTheReference) {
  ASSERT_NO_FATAL_FAILURE(Capture());
  ASSERT_NO_FATAL_FAILURE(RegisterAll());
  // A view of w from element 2 on.
  NGAUDIT_ASSERT(auditor_, ngaudit_register_range(auditor_, kWView,
                                                  Address(w_ + 2), kBytes - 8));
  NGAUDIT_ASSERT(auditor_, ngaudit_scan_graph(auditor_, graph_));
  int whole = 0, view = 0;
  for (const ngaudit_reference& r : References()) {
    if (r.range_id == kW && r.registered) ++whole;
    if (r.range_id == kWView && r.registered) {
      ++view;
      EXPECT_EQ(r.offset, 8u) << "w + 4 is 8 bytes into the view";
    }
  }
  EXPECT_EQ(whole, 3) << "two kernels and the memcpy source";
  EXPECT_EQ(view, 1) << "only the launch with w + 4 points into the view";
}

TEST_F(CApiTest, WalksChildGraphs) {
  ASSERT_NO_FATAL_FAILURE(Capture());
  ASSERT_NO_FATAL_FAILURE(RegisterAll());
  cudaGraph_t parent = nullptr;
  CUDA_ASSERT(cudaGraphCreate(&parent, 0));
  cudaGraphNode_t child = nullptr;
  CUDA_ASSERT(cudaGraphAddChildGraphNode(&child, parent, nullptr, 0, graph_));
  NGAUDIT_ASSERT(auditor_, ngaudit_scan_graph(auditor_, parent));
  const std::vector<ngaudit_node> nodes = Nodes();
  ASSERT_EQ(nodes.size(), 5u);
  EXPECT_EQ(nodes[0].kind, NGAUDIT_NODE_CHILD_GRAPH);
  EXPECT_EQ(nodes[0].depth, 0u);
  for (size_t i = 1; i < nodes.size(); ++i) EXPECT_EQ(nodes[i].depth, 1u);
  EXPECT_EQ(ngaudit_reference_count(auditor_), 11u);
  CUDA_ASSERT(cudaGraphDestroy(parent));
}

TEST_F(CApiTest, NothingRegisteredStillReportsDeviceMemory) {
  ASSERT_NO_FATAL_FAILURE(Capture());
  NGAUDIT_ASSERT(auditor_, ngaudit_scan_graph(auditor_, graph_));
  const std::vector<ngaudit_reference> refs = References();
  EXPECT_EQ(refs.size(), 11u);
  for (const ngaudit_reference& r : refs) {
    EXPECT_EQ(r.registered, 0u);
    EXPECT_EQ(r.memory_type, static_cast<uint32_t>(CU_MEMORYTYPE_DEVICE));
    EXPECT_NE(r.allocation_bytes, 0u);
  }
}

TEST_F(CApiTest, ResultsCopyAsPrefixesAndRangesAreChecked) {
  ASSERT_NO_FATAL_FAILURE(Capture());
  ASSERT_NO_FATAL_FAILURE(RegisterAll());
  NGAUDIT_ASSERT(auditor_, ngaudit_scan_graph(auditor_, graph_));
  const uint64_t n = ngaudit_reference_count(auditor_);
  // An older caller's struct: only the fields up to node_index.
  const size_t prefix = offsetof(ngaudit_reference, field);
  std::vector<unsigned char> bytes(2 * prefix + 8, 0xAB);
  ASSERT_EQ(ngaudit_get_references(
                auditor_, 0, 2,
                reinterpret_cast<ngaudit_reference*>(bytes.data()), prefix),
            NGAUDIT_OK);
  EXPECT_EQ(bytes[2 * prefix], 0xAB) << "nothing written past two prefixes";
  ngaudit_reference whole[2];
  ASSERT_EQ(ngaudit_get_references(auditor_, 0, 2, whole, sizeof whole[0]),
            NGAUDIT_OK);
  EXPECT_EQ(std::memcmp(bytes.data(), &whole[0], prefix), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + prefix, &whole[1], prefix), 0);

  ngaudit_reference one;
  EXPECT_EQ(ngaudit_get_references(auditor_, n, 1, &one, sizeof one),
            NGAUDIT_OUT_OF_RANGE);
  EXPECT_NE(std::string(ngaudit_last_error(auditor_)).find("the last scan has"),
            std::string::npos);
  EXPECT_EQ(ngaudit_get_references(auditor_, n, 0, nullptr, sizeof one),
            NGAUDIT_OK);
  EXPECT_EQ(ngaudit_get_references(auditor_, 0, 1, nullptr, sizeof one),
            NGAUDIT_INVALID_ARGUMENT);
  ngaudit_node node;
  EXPECT_EQ(ngaudit_get_nodes(auditor_, 0, 1, &node, 0),
            NGAUDIT_INVALID_ARGUMENT);
  EXPECT_EQ(ngaudit_get_nodes(auditor_, UINT64_MAX, 2, &node, sizeof node),
            NGAUDIT_OUT_OF_RANGE);
}

TEST_F(CApiTest, ErrorsAreStatusesWithMessages) {
  EXPECT_EQ(ngaudit_abi_version(), NGAUDIT_ABI_VERSION);
  EXPECT_EQ(ngaudit_node_struct_size(), sizeof(ngaudit_node));
  EXPECT_EQ(ngaudit_reference_struct_size(), sizeof(ngaudit_reference));
  EXPECT_STREQ(ngaudit_status_name(NGAUDIT_CUDA_ERROR), "NGAUDIT_CUDA_ERROR");
  EXPECT_STREQ(ngaudit_status_name(99), "unknown status");

  EXPECT_EQ(ngaudit_scan_graph(auditor_, nullptr), NGAUDIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ngaudit_last_error(auditor_)).find("null"),
            std::string::npos);
  EXPECT_EQ(ngaudit_node_count(auditor_), 0u);
  EXPECT_EQ(ngaudit_register_range(auditor_, 1, 0x1000, 0),
            NGAUDIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ngaudit_last_error(auditor_)).find("empty"),
            std::string::npos);
  EXPECT_EQ(ngaudit_register_range(auditor_, 1, 0x1000, 8), NGAUDIT_OK);
  EXPECT_STREQ(ngaudit_last_error(auditor_), "");
  EXPECT_EQ(ngaudit_register_range(auditor_, 1, 0x2000, 8),
            NGAUDIT_INVALID_ARGUMENT);
  EXPECT_EQ(ngaudit_range_count(auditor_), 1u);
  EXPECT_EQ(ngaudit_clear_ranges(auditor_), NGAUDIT_OK);
  EXPECT_EQ(ngaudit_range_count(auditor_), 0u);

  EXPECT_EQ(ngaudit_create(nullptr), NGAUDIT_INVALID_ARGUMENT);
  EXPECT_EQ(ngaudit_register_range(nullptr, 1, 1, 1), NGAUDIT_INVALID_ARGUMENT);
  EXPECT_EQ(ngaudit_scan_graph(nullptr, nullptr), NGAUDIT_INVALID_ARGUMENT);
  EXPECT_EQ(ngaudit_node_count(nullptr), 0u);
  EXPECT_STREQ(ngaudit_last_error(nullptr), "the auditor is null");
  ngaudit_destroy(nullptr);
}

// The shared library exports the C API and nothing else (its static C++
// runtime and CUDA runtime stay private, so it loads next to PyTorch's).
TEST(SharedLibraryTest, ExportsOnlyTheCApi) {
  const char* from_env = std::getenv("NORMGRAPH_AUDIT_LIB");
  const std::string path =
      from_env != nullptr ? from_env : "audit/libnormgraph_audit.so";
  void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    GTEST_SKIP() << "no " << path << " (" << dlerror()
                 << "); set NORMGRAPH_AUDIT_LIB";
  }
  for (const char* symbol :
       {"ngaudit_abi_version", "ngaudit_create", "ngaudit_destroy",
        "ngaudit_last_error", "ngaudit_register_range", "ngaudit_clear_ranges",
        "ngaudit_range_count", "ngaudit_scan_graph", "ngaudit_node_count",
        "ngaudit_reference_count", "ngaudit_get_nodes",
        "ngaudit_get_references", "ngaudit_status_name",
        "ngaudit_node_struct_size", "ngaudit_reference_struct_size"}) {
    EXPECT_NE(dlsym(library, symbol), nullptr) << symbol;
  }
  EXPECT_EQ(dlsym(library, "cudaMalloc"), nullptr);
  EXPECT_EQ(dlsym(library, "_ZNSt6vectorIiSaIiEE9push_backERKi"), nullptr);
  using AbiVersion = int (*)();
  const auto abi =
      reinterpret_cast<AbiVersion>(dlsym(library, "ngaudit_abi_version"));
  ASSERT_NE(abi, nullptr);
  EXPECT_EQ(abi(), NGAUDIT_ABI_VERSION);
  dlclose(library);
}

}  // namespace
}  // namespace normgraph::audit
