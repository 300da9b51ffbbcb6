#ifndef NORMGRAPH_AUDIT_NORMGRAPH_AUDIT_H_
#define NORMGRAPH_AUDIT_NORMGRAPH_AUDIT_H_

/*
 * normgraph_audit: which tensors does a CUDA graph read?
 *
 * A CUDA graph bakes device addresses into its nodes. If a program replaces a
 * tensor after capture (a new allocation instead of an in-place update),
 * replay silently reads the old memory. This library takes a graph made by
 * anyone (stream capture in PyTorch, the CUDA runtime, the driver API), reads
 * the argument values of every node back from the driver, and tells which
 * argument points into which of the byte ranges the caller registered. The
 * graph and its kernels are not changed.
 *
 * What is read, per node of the graph (child graphs are walked too):
 *   - kernel nodes: every 8-byte-aligned 8-byte word of the argument buffer
 *     (cuGraphKernelNodeGetParams; parameter offsets and sizes from
 *     cuFuncGetParamInfo; the name from cuFuncGetName). Pointers, and
 *     pointers inside struct arguments, are 8-byte aligned, so every pointer
 *     argument is one such word;
 *   - memcpy nodes: the source and destination address;
 *   - memset nodes: the destination address.
 * A word that lies in a registered range [address, address + bytes) becomes a
 * reference to that range (one per range, if ranges overlap). A word that
 * matches no range but that the driver knows as memory
 * (cuPointerGetAttribute(CU_POINTER_ATTRIBUTE_MEMORY_TYPE)) becomes an
 * unregistered reference, with its allocation's extent where the driver gives
 * one (cuMemGetAddressRange): workspaces, static inputs, anything not
 * registered.
 *
 * What it cannot see: addresses a kernel loads from memory (pointer arrays in
 * global memory, device-side tables). Tensors reached only that way have no
 * reference.
 *
 * Typical use (error handling left out):
 *
 *   ngaudit_auditor* a;
 *   ngaudit_create(&a);
 *   ngaudit_register_range(a, 7, (uint64_t)weight_ptr, weight_bytes);
 *   ngaudit_scan_graph(a, graph);            // a cudaGraph_t or CUgraph
 *   uint64_t n = ngaudit_reference_count(a);
 *   for (uint64_t i = 0; i < n; ++i) {
 *     ngaudit_reference r;
 *     ngaudit_get_references(a, i, 1, &r, sizeof r);
 *     // r.range_id == 7: node r.node_index reads the weight
 *   }
 *   ngaudit_destroy(a);
 *
 * Conventions:
 *   - Every function that can fail returns an ngaudit_status; on failure,
 *     ngaudit_last_error(a) says what failed (for a CUDA call: which call, on
 *     which node, and the driver's error name and text).
 *   - Strings returned by the library belong to the auditor: the nodes'
 *     names stay valid until its next ngaudit_scan_graph or ngaudit_destroy;
 *     ngaudit_last_error's string until the next call on the auditor that
 *     returns a status (copy it to keep it).
 *   - A handle is not thread-safe; distinct handles are independent, but
 *     CUDA wants calls on one graph serialized: do not scan the same graph
 *     from two threads at once.
 *   - No C++ exception leaves a function: running out of memory is
 *     NGAUDIT_OUT_OF_MEMORY, anything else NGAUDIT_INTERNAL.
 *   - The CUDA driver is reached through cudaGetDriverEntryPointByVersion on
 *     the first scan; nothing before that touches CUDA. The caller's thread
 *     should have the graph's context current (PyTorch's threads do); the
 *     library also uses the context recorded in a node where it needs one.
 *   - ABI: structs are read with a caller-given struct size, and fields are
 *     only ever appended, so a caller built against an older header keeps
 *     working. ngaudit_abi_version() changes only on incompatible changes.
 */

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define NGAUDIT_API __attribute__((visibility("default")))
#else
#define NGAUDIT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The same type as cudaGraph_t and CUgraph (both are struct CUgraph_st*). */
struct CUgraph_st;

#define NGAUDIT_ABI_VERSION 1

typedef enum ngaudit_status {
  NGAUDIT_OK = 0,
  NGAUDIT_INVALID_ARGUMENT = 1, /* null handle, empty range, duplicate id... */
  NGAUDIT_OUT_OF_RANGE = 2,     /* an index past the last result */
  NGAUDIT_CUDA_ERROR = 3,       /* a CUDA call failed: see ngaudit_last_error */
  NGAUDIT_OUT_OF_MEMORY = 4,    /* host memory */
  NGAUDIT_INTERNAL = 5
} ngaudit_status;

/* What a node is. */
typedef enum ngaudit_node_kind {
  NGAUDIT_NODE_KERNEL = 0,
  NGAUDIT_NODE_MEMCPY = 1,
  NGAUDIT_NODE_MEMSET = 2,
  NGAUDIT_NODE_CHILD_GRAPH = 3, /* its nodes follow it, at depth + 1 */
  NGAUDIT_NODE_OTHER = 4        /* events, host nodes, allocations... */
} ngaudit_node_kind;

/* Where in a node an address was found. */
typedef enum ngaudit_field {
  NGAUDIT_FIELD_KERNEL_ARGUMENT = 0,
  NGAUDIT_FIELD_MEMCPY_SOURCE = 1,
  NGAUDIT_FIELD_MEMCPY_DESTINATION = 2,
  NGAUDIT_FIELD_MEMSET_DESTINATION = 3
} ngaudit_field;

/* One node of the last scan, in walk order (cuGraphGetNodes order; a child
 * graph's nodes right after the child-graph node). */
typedef struct ngaudit_node {
  /* The mangled kernel name (cuFuncGetName), "memcpy", "memset", or the
   * driver's node type ("event_record", "host", ...). */
  const char* name;
  /* The demangled kernel name, or `name` when it is not a mangled name. */
  const char* display_name;
  /* Empty when the node's arguments were read; otherwise why not (e.g. the
   * driver gave no parameter layout). Its tensors then have no reference. */
  const char* note;
  uint32_t index;          /* position in the walk, 0-based */
  uint32_t kind;           /* ngaudit_node_kind */
  int32_t driver_type;     /* CUgraphNodeType */
  uint32_t depth;          /* child-graph nesting, 0 = the scanned graph */
  uint32_t param_count;    /* kernel parameters (kernels only) */
  uint32_t argument_bytes; /* kernel argument buffer size (kernels only) */
  uint32_t scanned;        /* 1 if the node's addresses were read */
  uint32_t reserved;
} ngaudit_node;

/* One address found in a node. */
typedef struct ngaudit_reference {
  uint64_t address;          /* the value read from the node */
  uint64_t range_id;         /* the caller's id for the range (if registered) */
  uint64_t offset;           /* address - range start (if registered) */
  uint64_t allocation_base;  /* unregistered: the driver's allocation ... */
  uint64_t allocation_bytes; /* ... extent, or 0 where it has none */
  uint32_t node_index;
  uint32_t field;        /* ngaudit_field */
  int32_t param_index;   /* kernel parameter index, -1 for memcpy/memset */
  uint32_t param_offset; /* that parameter's offset in the argument buffer */
  uint32_t word_offset;  /* the word's offset in the argument buffer */
  uint32_t registered;   /* 1: in a registered range; 0: unregistered */
  uint32_t memory_type;  /* unregistered: CUmemorytype (1 host, 2 device...) */
  uint32_t reserved;
} ngaudit_reference;

typedef struct ngaudit_auditor ngaudit_auditor;

/* NGAUDIT_ABI_VERSION of the library. */
NGAUDIT_API int ngaudit_abi_version(void);

/* sizeof(ngaudit_node) and sizeof(ngaudit_reference) in the library. */
NGAUDIT_API size_t ngaudit_node_struct_size(void);
NGAUDIT_API size_t ngaudit_reference_struct_size(void);

/* "NGAUDIT_OK", "NGAUDIT_CUDA_ERROR", ... ("unknown status" otherwise). */
NGAUDIT_API const char* ngaudit_status_name(int status);

/* A new auditor with no ranges and no scan. */
NGAUDIT_API int ngaudit_create(ngaudit_auditor** out);

/* Frees the auditor and everything it returned. Null is fine. */
NGAUDIT_API void ngaudit_destroy(ngaudit_auditor* auditor);

/* What the last call on this auditor that returns a status failed with (""
 * if it succeeded, or if there was none). */
NGAUDIT_API const char* ngaudit_last_error(const ngaudit_auditor* auditor);

/* Registers [address, address + bytes) under the caller's `id`. Ranges may
 * overlap (views of one buffer); ids must be unique; bytes > 0. Takes effect
 * at the next scan. */
NGAUDIT_API int ngaudit_register_range(ngaudit_auditor* auditor, uint64_t id,
                                       uint64_t address, uint64_t bytes);

/* Forgets every registered range. */
NGAUDIT_API int ngaudit_clear_ranges(ngaudit_auditor* auditor);

/* Number of registered ranges. */
NGAUDIT_API uint64_t ngaudit_range_count(const ngaudit_auditor* auditor);

/* Walks `graph` and replaces the results of the previous scan. On failure
 * the results are empty. A node the driver cannot describe does not fail the
 * scan: it is listed with scanned = 0 and a note. */
NGAUDIT_API int ngaudit_scan_graph(ngaudit_auditor* auditor,
                                   struct CUgraph_st* graph);

/* Results of the last scan (0 before any). */
NGAUDIT_API uint64_t ngaudit_node_count(const ngaudit_auditor* auditor);
NGAUDIT_API uint64_t ngaudit_reference_count(const ngaudit_auditor* auditor);

/* Copies results [first, first + count) into `out`, an array of `count`
 * structs of `struct_size` bytes each (pass sizeof(ngaudit_node) /
 * sizeof(ngaudit_reference); a smaller size gets a prefix of each struct).
 * NGAUDIT_OUT_OF_RANGE if first + count exceeds the result count. */
NGAUDIT_API int ngaudit_get_nodes(const ngaudit_auditor* auditor,
                                  uint64_t first, uint64_t count,
                                  ngaudit_node* out, size_t struct_size);
NGAUDIT_API int ngaudit_get_references(const ngaudit_auditor* auditor,
                                       uint64_t first, uint64_t count,
                                       ngaudit_reference* out,
                                       size_t struct_size);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* NORMGRAPH_AUDIT_NORMGRAPH_AUDIT_H_ */
