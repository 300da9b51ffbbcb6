#ifndef NORMGRAPH_AUDIT_GRAPH_SCAN_H_
#define NORMGRAPH_AUDIT_GRAPH_SCAN_H_

// One walk over a CUDA graph: every node, in cuGraphGetNodes order (a child
// graph's nodes right after its child-graph node), and every address its
// kernel arguments, memcpy or memset parameters hold, matched against the
// registered ranges (see normgraph_audit.h for what is read and what cannot
// be seen). Nothing in the graph is changed.
//
// A node whose parameters the driver cannot give (or whose addresses cannot
// all be classified) does not stop the walk: it keeps the references found so
// far and gets scanned = false and a note. Failures to list the graph's nodes
// or their types stop the walk.

#include <cuda.h>

#include <cstdint>
#include <string>
#include <vector>

#include "audit/driver_api.h"
#include "audit/normgraph_audit.h"
#include "audit/range_registry.h"
#include "audit/status.h"

namespace normgraph::audit {

struct NodeRecord {
  std::string name;
  std::string display_name;
  std::string note;
  uint32_t index = 0;
  ngaudit_node_kind kind = NGAUDIT_NODE_OTHER;
  int32_t driver_type = 0;
  uint32_t depth = 0;
  uint32_t param_count = 0;
  uint32_t argument_bytes = 0;
  bool scanned = false;
};

struct ScanResult {
  std::vector<NodeRecord> nodes;
  std::vector<ngaudit_reference> references;
};

Status ScanGraph(const DriverApi& api, CUgraph graph,
                 const RangeRegistry& ranges, ScanResult* out);

// "kernel", "memcpy", "event_record", ... for a CUgraphNodeType.
const char* NodeTypeName(CUgraphNodeType type);

}  // namespace normgraph::audit

#endif  // NORMGRAPH_AUDIT_GRAPH_SCAN_H_
