// The C ABI (normgraph_audit.h): an opaque handle around a RangeRegistry and
// the last ScanResult, with the message of the last failure. Only the
// ngaudit_* functions are exported from libnormgraph_audit.so (exports.lds).

#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "audit/driver_api.h"
#include "audit/graph_scan.h"
#include "audit/normgraph_audit.h"
#include "audit/range_registry.h"
#include "audit/status.h"

struct ngaudit_auditor {
  normgraph::audit::RangeRegistry ranges;
  normgraph::audit::ScanResult scan;
  mutable std::string last_error;
};

namespace {

using normgraph::audit::Status;

int Report(const ngaudit_auditor* auditor, const Status& status) {
  auditor->last_error = status.message();
  return status.code();
}

// Report that never throws (for the handlers below): a message that cannot
// be stored leaves it empty.
int ReportNoThrow(const ngaudit_auditor* auditor, int code,
                  const char* message) noexcept {
  try {
    auditor->last_error = message;
  } catch (...) {
    auditor->last_error.clear();
  }
  return code;
}

// Runs `body`; no exception leaves it (an extern "C" function must not throw:
// through ctypes that would end the host process): out of memory is
// NGAUDIT_OUT_OF_MEMORY, anything else NGAUDIT_INTERNAL.
template <typename Body>
int Guarded(const ngaudit_auditor* auditor, const char* out_of_memory,
            Body body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return ReportNoThrow(auditor, NGAUDIT_OUT_OF_MEMORY, out_of_memory);
  } catch (const std::exception& e) {
    return ReportNoThrow(auditor, NGAUDIT_INTERNAL, e.what());
  } catch (...) {
    return ReportNoThrow(auditor, NGAUDIT_INTERNAL, "an unknown exception");
  }
}

// Copies `count` items from `first` on, each converted by `fill` into a
// struct of `struct_size` bytes (a prefix of T if smaller).
template <typename T, typename Items, typename Fill>
int CopyOut(const ngaudit_auditor* auditor, const Items& items, uint64_t first,
            uint64_t count, T* out, size_t struct_size, const char* what,
            Fill fill) {
  if (out == nullptr && count > 0) {
    return Report(auditor, normgraph::audit::InvalidArgument(
                               std::string("no output array for the ") + what));
  }
  if (struct_size == 0) {
    return Report(auditor, normgraph::audit::InvalidArgument(
                               "struct size 0 for the " + std::string(what)));
  }
  if (first > items.size() || count > items.size() - first) {
    return Report(auditor,
                  Status(NGAUDIT_OUT_OF_RANGE,
                         std::string(what) + " [" + std::to_string(first) +
                             ", " + std::to_string(first + count) +
                             ") asked for; the last scan has " +
                             std::to_string(items.size())));
  }
  const size_t bytes = struct_size < sizeof(T) ? struct_size : sizeof(T);
  auto* dst = reinterpret_cast<unsigned char*>(out);
  for (uint64_t i = 0; i < count; ++i) {
    T item{};
    fill(items[first + i], &item);
    std::memcpy(dst + i * struct_size, &item, bytes);
  }
  auditor->last_error.clear();
  return NGAUDIT_OK;
}

}  // namespace

extern "C" {

NGAUDIT_API int ngaudit_abi_version(void) { return NGAUDIT_ABI_VERSION; }

NGAUDIT_API size_t ngaudit_node_struct_size(void) {
  return sizeof(ngaudit_node);
}

NGAUDIT_API size_t ngaudit_reference_struct_size(void) {
  return sizeof(ngaudit_reference);
}

NGAUDIT_API const char* ngaudit_status_name(int status) {
  switch (status) {
    case NGAUDIT_OK:
      return "NGAUDIT_OK";
    case NGAUDIT_INVALID_ARGUMENT:
      return "NGAUDIT_INVALID_ARGUMENT";
    case NGAUDIT_OUT_OF_RANGE:
      return "NGAUDIT_OUT_OF_RANGE";
    case NGAUDIT_CUDA_ERROR:
      return "NGAUDIT_CUDA_ERROR";
    case NGAUDIT_OUT_OF_MEMORY:
      return "NGAUDIT_OUT_OF_MEMORY";
    case NGAUDIT_INTERNAL:
      return "NGAUDIT_INTERNAL";
    default:
      return "unknown status";
  }
}

NGAUDIT_API int ngaudit_create(ngaudit_auditor** out) {
  if (out == nullptr) return NGAUDIT_INVALID_ARGUMENT;
  *out = new (std::nothrow) ngaudit_auditor();
  return *out == nullptr ? NGAUDIT_OUT_OF_MEMORY : NGAUDIT_OK;
}

NGAUDIT_API void ngaudit_destroy(ngaudit_auditor* auditor) { delete auditor; }

NGAUDIT_API const char* ngaudit_last_error(const ngaudit_auditor* auditor) {
  if (auditor == nullptr) return "the auditor is null";
  return auditor->last_error.c_str();
}

NGAUDIT_API int ngaudit_register_range(ngaudit_auditor* auditor, uint64_t id,
                                       uint64_t address, uint64_t bytes) {
  if (auditor == nullptr) return NGAUDIT_INVALID_ARGUMENT;
  return Guarded(auditor, "out of memory registering a range", [&] {
    return Report(auditor, auditor->ranges.Add(id, address, bytes));
  });
}

NGAUDIT_API int ngaudit_clear_ranges(ngaudit_auditor* auditor) {
  if (auditor == nullptr) return NGAUDIT_INVALID_ARGUMENT;
  auditor->ranges.Clear();
  auditor->last_error.clear();
  return NGAUDIT_OK;
}

NGAUDIT_API uint64_t ngaudit_range_count(const ngaudit_auditor* auditor) {
  return auditor == nullptr ? 0 : auditor->ranges.size();
}

NGAUDIT_API int ngaudit_scan_graph(ngaudit_auditor* auditor,
                                   struct CUgraph_st* graph) {
  if (auditor == nullptr) return NGAUDIT_INVALID_ARGUMENT;
  auditor->scan = normgraph::audit::ScanResult();
  const int status = Guarded(auditor, "out of memory during the scan", [&] {
    // Before the driver is loaded: a null graph is the caller's error on any
    // machine, with a driver or without.
    if (graph == nullptr) {
      return Report(auditor,
                    normgraph::audit::InvalidArgument("the graph is null"));
    }
    const normgraph::audit::DriverApi* api = nullptr;
    const Status loaded = normgraph::audit::LoadDriverApi(&api);
    if (!loaded.ok()) return Report(auditor, loaded);
    return Report(auditor, normgraph::audit::ScanGraph(
                               *api, graph, auditor->ranges, &auditor->scan));
  });
  if (status != NGAUDIT_OK) auditor->scan = normgraph::audit::ScanResult();
  return status;
}

NGAUDIT_API uint64_t ngaudit_node_count(const ngaudit_auditor* auditor) {
  return auditor == nullptr ? 0 : auditor->scan.nodes.size();
}

NGAUDIT_API uint64_t ngaudit_reference_count(const ngaudit_auditor* auditor) {
  return auditor == nullptr ? 0 : auditor->scan.references.size();
}

NGAUDIT_API int ngaudit_get_nodes(const ngaudit_auditor* auditor,
                                  uint64_t first, uint64_t count,
                                  ngaudit_node* out, size_t struct_size) {
  if (auditor == nullptr) return NGAUDIT_INVALID_ARGUMENT;
  return Guarded(auditor, "out of memory copying the nodes", [&] {
    return CopyOut(
        auditor, auditor->scan.nodes, first, count, out, struct_size, "nodes",
        [](const normgraph::audit::NodeRecord& node, ngaudit_node* n) {
          n->name = node.name.c_str();
          n->display_name = node.display_name.c_str();
          n->note = node.note.c_str();
          n->index = node.index;
          n->kind = node.kind;
          n->driver_type = node.driver_type;
          n->depth = node.depth;
          n->param_count = node.param_count;
          n->argument_bytes = node.argument_bytes;
          n->scanned = node.scanned ? 1 : 0;
        });
  });
}

NGAUDIT_API int ngaudit_get_references(const ngaudit_auditor* auditor,
                                       uint64_t first, uint64_t count,
                                       ngaudit_reference* out,
                                       size_t struct_size) {
  if (auditor == nullptr) return NGAUDIT_INVALID_ARGUMENT;
  return Guarded(auditor, "out of memory copying the references", [&] {
    return CopyOut(
        auditor, auditor->scan.references, first, count, out, struct_size,
        "references",
        [](const ngaudit_reference& ref, ngaudit_reference* r) { *r = ref; });
  });
}

}  // extern "C"
