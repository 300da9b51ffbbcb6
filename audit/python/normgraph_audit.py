"""normgraph_audit: find the tensors that moved under a captured CUDA graph.

A CUDA graph bakes device addresses into its nodes. If a module re-allocates a
tensor after capture (``self.gemma_weight = param.data + 1.0`` in a weight
loader) instead of updating it in place, replay silently keeps reading the old
memory. This module names every such tensor, for any graph PyTorch captured,
without touching its kernels:

    graph = torch.cuda.CUDAGraph(keep_graph=True)
    with torch.cuda.graph(graph):
        out = model(static_input)
    audit = normgraph_audit.capture(graph, model)   # inventory, once
    ...
    audit.check_and_raise()                         # before a replay, or after
    graph.replay()                                  # a weight update

``capture`` registers every named parameter and buffer of ``model`` (and any
``tensors={"name": tensor_or_callable}`` you add) with libnormgraph_audit.so,
which reads every node's arguments back from the CUDA driver and tells which
node reads which tensor. ``check`` then compares each tensor the graph reads
with what the module holds now: the same storage (by identity, not just by
address), the same address, dtype, shape and strides. What it finds:

- ``moved``: the module holds another storage than the one the graph reads
  (whose memory is stale if still alive, or free for anyone if not);
- ``reused``: the storage the graph reads is gone and its address now belongs
  to another tensor (possibly the name's own new tensor: an address-only check
  would pass, and the graph reads whatever lives there);
- ``view``: same storage, another address / dtype / shape / strides;
- ``removed``: the name (or its module) is gone.

Graph arguments that point to memory no registered tensor covers (workspaces,
static inputs and outputs) are reported, never failed.

Standard library only; torch stays on the caller's side (tensors and modules
are used through their methods). The library is found through ``library=``,
``$NORMGRAPH_AUDIT_LIB``, next to this file, or in a Bazel output tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "ABI_VERSION",
    "AuditError",
    "CheckResult",
    "GraphAudit",
    "GraphNode",
    "Reference",
    "StaleGraphError",
    "TensorState",
    "UnregisteredPointer",
    "Violation",
    "capture",
    "load_library",
    "short_kernel_name",
]

ABI_VERSION = 1
LIBRARY_NAME = "libnormgraph_audit.so"

MOVED, REUSED, VIEW, REMOVED = "moved", "reused", "view", "removed"


class AuditError(RuntimeError):
    """The audit could not be made (no library, no graph handle, a CUDA error)."""


class StaleGraphError(RuntimeError):
    """check_and_raise found tensors that changed under the graph."""

    def __init__(self, result: "CheckResult"):
        super().__init__(str(result))
        self.result = result


# --------------------------------------------------------------------------------------------------
# The C library (normgraph_audit.h)


class _CNode(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("display_name", ctypes.c_char_p),
        ("note", ctypes.c_char_p),
        ("index", ctypes.c_uint32),
        ("kind", ctypes.c_uint32),
        ("driver_type", ctypes.c_int32),
        ("depth", ctypes.c_uint32),
        ("param_count", ctypes.c_uint32),
        ("argument_bytes", ctypes.c_uint32),
        ("scanned", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


class _CReference(ctypes.Structure):
    _fields_ = [
        ("address", ctypes.c_uint64),
        ("range_id", ctypes.c_uint64),
        ("offset", ctypes.c_uint64),
        ("allocation_base", ctypes.c_uint64),
        ("allocation_bytes", ctypes.c_uint64),
        ("node_index", ctypes.c_uint32),
        ("field", ctypes.c_uint32),
        ("param_index", ctypes.c_int32),
        ("param_offset", ctypes.c_uint32),
        ("word_offset", ctypes.c_uint32),
        ("registered", ctypes.c_uint32),
        ("memory_type", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


_NODE_KINDS = ("kernel", "memcpy", "memset", "child_graph", "other")
_FIELDS = ("argument", "memcpy_source", "memcpy_destination", "memset_destination")
_MEMORY_TYPES = {1: "host", 2: "device", 3: "array", 4: "unified"}


@dataclass(frozen=True)
class RawReference:
    """One address found in a node, as the library reports it."""

    node_index: int
    field: str
    param_index: int
    param_offset: int
    word_offset: int
    address: int
    range_id: Optional[int]  # None: matches no registered range
    offset: int
    memory_type: str = ""
    allocation_base: int = 0
    allocation_bytes: int = 0


class CLibrary:
    """libnormgraph_audit.so through ctypes."""

    def __init__(self, path: str):
        self.path = path
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise AuditError(f"cannot load {path}: {e}") from e
        self._lib = lib
        u64, p = ctypes.c_uint64, ctypes.c_void_p
        sig = {
            "ngaudit_abi_version": (ctypes.c_int, []),
            "ngaudit_node_struct_size": (ctypes.c_size_t, []),
            "ngaudit_reference_struct_size": (ctypes.c_size_t, []),
            "ngaudit_status_name": (ctypes.c_char_p, [ctypes.c_int]),
            "ngaudit_create": (ctypes.c_int, [ctypes.POINTER(p)]),
            "ngaudit_destroy": (None, [p]),
            "ngaudit_last_error": (ctypes.c_char_p, [p]),
            "ngaudit_register_range": (ctypes.c_int, [p, u64, u64, u64]),
            "ngaudit_scan_graph": (ctypes.c_int, [p, p]),
            "ngaudit_node_count": (u64, [p]),
            "ngaudit_reference_count": (u64, [p]),
            "ngaudit_get_nodes": (ctypes.c_int, [p, u64, u64, ctypes.POINTER(_CNode), ctypes.c_size_t]),
            "ngaudit_get_references": (
                ctypes.c_int,
                [p, u64, u64, ctypes.POINTER(_CReference), ctypes.c_size_t],
            ),
        }
        for name, (restype, argtypes) in sig.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        if lib.ngaudit_abi_version() != ABI_VERSION:
            raise AuditError(f"{path} has ABI version {lib.ngaudit_abi_version()}, this module {ABI_VERSION}")
        sizes = (lib.ngaudit_node_struct_size(), lib.ngaudit_reference_struct_size())
        if sizes != (ctypes.sizeof(_CNode), ctypes.sizeof(_CReference)):
            raise AuditError(f"{path}: struct sizes {sizes} differ from this module's")

    def _check(self, handle, status: int, what: str) -> None:
        if status != 0:
            name = self._lib.ngaudit_status_name(status).decode()
            detail = self._lib.ngaudit_last_error(handle).decode(errors="replace")
            raise AuditError(f"{what}: {name}: {detail}")

    def scan(self, graph_handle: int, ranges: Sequence[Tuple[int, int, int]]):
        """Registers (id, address, bytes) ranges and walks the graph: (nodes, references)."""
        lib = self._lib
        handle = ctypes.c_void_p()
        self._check(None, lib.ngaudit_create(ctypes.byref(handle)), "ngaudit_create")
        try:
            for range_id, address, nbytes in ranges:
                self._check(handle, lib.ngaudit_register_range(handle, range_id, address, nbytes),
                            f"registering range {range_id}")
            self._check(handle, lib.ngaudit_scan_graph(handle, ctypes.c_void_p(graph_handle)),
                        f"scanning graph 0x{graph_handle:x}")
            n_nodes, n_refs = lib.ngaudit_node_count(handle), lib.ngaudit_reference_count(handle)
            c_nodes = (_CNode * max(n_nodes, 1))()
            c_refs = (_CReference * max(n_refs, 1))()
            self._check(handle, lib.ngaudit_get_nodes(handle, 0, n_nodes, c_nodes, ctypes.sizeof(_CNode)),
                        "reading nodes")
            self._check(handle, lib.ngaudit_get_references(handle, 0, n_refs, c_refs,
                                                           ctypes.sizeof(_CReference)),
                        "reading references")
            nodes = [
                GraphNode(
                    index=n.index,
                    kind=_NODE_KINDS[n.kind] if n.kind < len(_NODE_KINDS) else "other",
                    name=(n.name or b"").decode(errors="replace"),
                    display_name=(n.display_name or b"").decode(errors="replace"),
                    depth=n.depth,
                    param_count=n.param_count,
                    argument_bytes=n.argument_bytes,
                    scanned=bool(n.scanned),
                    note=(n.note or b"").decode(errors="replace"),
                )
                for n in c_nodes[:n_nodes]
            ]
            refs = [
                RawReference(
                    node_index=r.node_index,
                    field=_FIELDS[r.field] if r.field < len(_FIELDS) else "argument",
                    param_index=r.param_index,
                    param_offset=r.param_offset,
                    word_offset=r.word_offset,
                    address=r.address,
                    range_id=r.range_id if r.registered else None,
                    offset=r.offset,
                    memory_type=_MEMORY_TYPES.get(r.memory_type, str(r.memory_type)) if not r.registered else "",
                    allocation_base=r.allocation_base,
                    allocation_bytes=r.allocation_bytes,
                )
                for r in c_refs[:n_refs]
            ]
            return nodes, refs
        finally:
            lib.ngaudit_destroy(handle)


_loaded: Dict[str, CLibrary] = {}


def _candidate_paths() -> List[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    paths = []
    if os.environ.get("NORMGRAPH_AUDIT_LIB"):
        paths.append(os.environ["NORMGRAPH_AUDIT_LIB"])
    paths += [
        os.path.join(here, LIBRARY_NAME),
        os.path.join(here, "..", "lib", LIBRARY_NAME),
        os.path.join(here, "..", "..", "bazel-bin", "audit", LIBRARY_NAME),
    ]
    return paths


def load_library(path: Optional[str] = None) -> CLibrary:
    """The C library: `path`, else $NORMGRAPH_AUDIT_LIB, next to this file, ../lib/, bazel-bin/audit/."""
    paths = [path] if path else _candidate_paths()
    for candidate in paths:
        if os.path.exists(candidate):
            real = os.path.realpath(candidate)
            if real not in _loaded:
                _loaded[real] = CLibrary(real)
            return _loaded[real]
    raise AuditError(
        f"{LIBRARY_NAME} not found (looked at: {', '.join(paths)}); build it with "
        "`bazel build --config=cuda -c opt //audit:libnormgraph_audit.so` and pass library=... "
        "or set NORMGRAPH_AUDIT_LIB")


# --------------------------------------------------------------------------------------------------
# What the graph reads


def short_kernel_name(name: str) -> str:
    """'void at::native::foo<4, Op<float>>(int, Op<float>)' -> 'at::native::foo<…>'."""
    out, depth = [], 0
    for ch in name:
        if ch == "<":
            if depth == 0:
                out.append("<…>")
            depth += 1
        elif ch == ">" and depth > 0:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    text = "".join(out).strip()
    if text.endswith(")"):
        balance = 0
        for i in range(len(text) - 1, -1, -1):
            balance += {")": 1, "(": -1}.get(text[i], 0)
            if balance == 0:
                if i > 0:
                    text = text[:i]
                break
    if text.startswith("void "):
        text = text[len("void "):]
    return text or name


@dataclass(frozen=True)
class GraphNode:
    """One node of the graph, in the driver's order (child graphs' nodes follow their node)."""

    index: int
    kind: str  # kernel | memcpy | memset | child_graph | other
    name: str  # mangled kernel name, or the node type
    display_name: str  # demangled
    depth: int = 0
    param_count: int = 0
    argument_bytes: int = 0
    scanned: bool = True
    note: str = ""

    @property
    def short_name(self) -> str:
        return short_kernel_name(self.display_name or self.name)

    def __str__(self) -> str:
        return f"#{self.index} {self.short_name}"


@dataclass(frozen=True)
class Reference:
    """A node argument that points into a named tensor."""

    node: GraphNode
    field: str  # argument | memcpy_source | memcpy_destination | memset_destination
    param_index: int
    word_offset: int
    address: int
    offset: int  # bytes into the tensor

    def __str__(self) -> str:
        if self.field == "argument":
            where = f"argument {self.param_index}, word +{self.word_offset}"
        else:
            where = self.field.replace("_", " ")
        at = f", +{self.offset} B into it" if self.offset else ""
        return f"{self.node} ({where}{at})"


@dataclass(frozen=True)
class UnregisteredPointer:
    """An address in the graph that no registered tensor covers: reported, never checked."""

    address: int
    memory_type: str  # device | host | unified | ...
    allocation_base: int
    allocation_bytes: int
    readers: Tuple[Reference, ...]

    def __str__(self) -> str:
        alloc = ""
        if self.allocation_bytes:
            alloc = (f" in a {_bytes(self.allocation_bytes)} allocation at 0x{self.allocation_base:x}"
                     f" (+{self.address - self.allocation_base})")
        return (f"0x{self.address:x} ({self.memory_type} memory{alloc}), read by "
                f"{_readers_text(self.readers)}")


@dataclass(frozen=True)
class TensorState:
    """A tensor's identity: its storage (by identity), address, dtype, shape, strides."""

    storage_id: int
    storage_alive: Optional[bool]  # None: unknown (no weak storage references)
    data_ptr: int
    nbytes: int  # the bytes its elements span
    dtype: str
    shape: Tuple[int, ...]
    stride: Tuple[int, ...]
    storage_offset: int
    storage_data_ptr: int
    device: str

    def __str__(self) -> str:
        shape = ",".join(str(s) for s in self.shape)
        return (f"storage #{self.storage_id} @0x{self.data_ptr:x} {self.dtype}[{shape}] "
                f"stride {tuple(self.stride)} ({self.nbytes} B)")


@dataclass(frozen=True)
class Violation:
    """A tensor the graph reads that is no longer what the module holds."""

    name: str
    kind: str  # moved | reused | view | removed
    message: str
    before: TensorState
    after: Optional[TensorState]
    readers: Tuple[Reference, ...]
    occupants: Tuple[str, ...] = ()  # names now holding the old address
    old_storage_alive: Optional[bool] = None  # the storage the graph reads, now (None: unknown)

    def __str__(self) -> str:
        return self.message


@dataclass
class CheckResult:
    """What check() found. ``ok`` is False when any tensor the graph reads changed."""

    graph_name: str
    violations: Tuple[Violation, ...]
    unregistered: Tuple[UnregisteredPointer, ...]
    checked: int
    unscanned_nodes: Tuple[GraphNode, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def names(self) -> List[str]:
        return [v.name for v in self.violations]

    def __str__(self) -> str:
        if self.ok:
            return (f"graph '{self.graph_name}': the {self.checked} named tensors it reads are unchanged "
                    f"since capture ({len(self.unregistered)} unregistered addresses not checked)")
        lines = [f"graph '{self.graph_name}': {len(self.violations)} of the {self.checked} named tensors it "
                 "reads changed since capture; replay would read stale or foreign memory:"]
        lines += [f"  {v.message}" for v in self.violations]
        return "\n".join(lines)


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _readers_text(readers: Sequence[Reference], limit: int = 3) -> str:
    nodes = sorted({r.node.index: r for r in readers}.values(), key=lambda r: r.node.index)
    text = ", ".join(str(r) for r in nodes[:limit])
    if len(nodes) > limit:
        text += f" and {len(nodes) - limit} more"
    return f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}: {text}"


# --------------------------------------------------------------------------------------------------
# Storage identity


class _Storage:
    """One storage the audit has seen, under a stable id (#1, #2, ...).

    It holds a weak reference to PyTorch's StorageImpl (``UntypedStorage._weak_ref``, what
    ``torch.multiprocessing``'s StorageWeakRef uses): the storage's memory is freed as usual when
    its last tensor goes, but the StorageImpl's address, the key here, cannot be handed to another
    storage while the audit holds it. So equal keys mean the same storage, a freed storage reads as
    expired, and a new tensor at a recycled address has another key.
    """

    __slots__ = ("id", "key", "data_ptr", "_handle", "_expired", "_free")

    def __init__(self, sid: int, storage: Any):
        self.id = sid
        self.key = int(storage._cdata)
        self.data_ptr = int(storage.data_ptr())
        self._handle = self._expired = self._free = None
        kind = type(storage)
        weak_ref = getattr(storage, "_weak_ref", None)
        if weak_ref is not None and hasattr(kind, "_expired") and hasattr(kind, "_free_weak_ref"):
            self._handle = int(weak_ref())
            self._expired, self._free = kind._expired, kind._free_weak_ref

    def alive(self) -> Optional[bool]:
        if self._handle is None:
            return None
        return not self._expired(self._handle)

    def release(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                self._free(handle)
            except Exception:  # interpreter shutdown
                pass

    def __del__(self):
        self.release()


class _StorageTable:
    def __init__(self):
        self._by_key: Dict[int, _Storage] = {}
        self._next_id = 1

    def identify(self, storage: Any) -> _Storage:
        key = int(storage._cdata)
        known = self._by_key.get(key)
        # A held weak reference keeps the key unique; without one, a dead entry is stale.
        if known is not None and known.alive() is not False:
            return known
        entry = _Storage(self._next_id, storage)
        self._next_id += 1
        if known is not None:
            known.release()
        self._by_key[key] = entry
        return entry

    def release(self) -> None:
        for entry in self._by_key.values():
            entry.release()
        self._by_key.clear()


def _dtype_name(dtype: Any) -> str:
    text = str(dtype)
    return text[len("torch."):] if text.startswith("torch.") else text


def _span_bytes(t: Any) -> int:
    """Bytes from the first to one past the last element the view reaches."""
    if t.numel() == 0:
        return 0
    last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))
    return (last + 1) * t.element_size()


def _state(t: Any, storages: _StorageTable) -> Tuple[TensorState, _Storage]:
    storage = t.untyped_storage()
    entry = storages.identify(storage)
    state = TensorState(
        storage_id=entry.id,
        storage_alive=entry.alive(),
        data_ptr=int(t.data_ptr()),
        nbytes=_span_bytes(t),
        dtype=_dtype_name(t.dtype),
        shape=tuple(int(s) for s in t.shape),
        stride=tuple(int(s) for s in t.stride()),
        storage_offset=int(t.storage_offset()),
        storage_data_ptr=int(storage.data_ptr()),
        device=str(t.device),
    )
    return state, entry


# --------------------------------------------------------------------------------------------------
# Named tensors

_PARAMETER, _BUFFER, _EXTRA_TENSOR, _EXTRA_GETTER = range(4)
_SLOT_NAMES = {_PARAMETER: "parameter", _BUFFER: "buffer", _EXTRA_TENSOR: "tensor", _EXTRA_GETTER: "tensor"}


class _Named:
    """A named tensor as captured, and how to find what that name holds now."""

    __slots__ = ("name", "slot", "owner", "attr", "state", "storage", "dtype", "shape", "stride",
                 "readers")

    def __init__(self, name, slot, owner, attr, t, storages):
        self.name, self.slot, self.attr = name, slot, attr
        # A module or tensor is held weakly (the audit keeps nothing alive); a getter strongly.
        self.owner = owner if slot == _EXTRA_GETTER else weakref.ref(owner)
        self.state, self.storage = _state(t, storages)
        self.dtype, self.shape, self.stride = t.dtype, tuple(t.shape), tuple(t.stride())
        self.readers: List[Reference] = []

    def current(self) -> Tuple[Any, str]:
        """(tensor now under this name or None, where it was found)."""
        if self.slot == _EXTRA_GETTER:
            return self.owner(), "tensor"
        owner = self.owner()
        if owner is None:
            return None, "the module was deleted or replaced"
        if self.slot == _EXTRA_TENSOR:
            return owner, "tensor"
        table = owner._parameters if self.slot == _PARAMETER else owner._buffers
        t = table.get(self.attr)
        if t is not None:
            return t, _SLOT_NAMES[self.slot]
        # Moved between parameters and buffers, or now a plain attribute.
        for where, table in (("parameter", owner._parameters), ("buffer", owner._buffers)):
            if table.get(self.attr) is not None:
                return table[self.attr], where
        plain = owner.__dict__.get(self.attr)
        if plain is not None and hasattr(plain, "untyped_storage"):
            return plain, "plain attribute (no longer a registered parameter or buffer)"
        return None, f"no {_SLOT_NAMES[self.slot]} or attribute '{self.attr}' on its module any more"


def _walk_model(model: Any) -> Iterator[Tuple[str, int, Any, str, Any]]:
    """(dotted name, slot, module, attribute, tensor) for every parameter and buffer."""
    for prefix, module in model.named_modules(remove_duplicate=False):
        for slot, table in ((_PARAMETER, module._parameters), (_BUFFER, module._buffers)):
            for attr, t in table.items():
                if t is not None:
                    yield (f"{prefix}.{attr}" if prefix else attr), slot, module, attr, t


# --------------------------------------------------------------------------------------------------
# The audit


class GraphAudit:
    """The inventory of one captured graph, and the check against the model's tensors now."""

    def __init__(self, graph: Any, model: Any = None, *, tensors: Optional[Mapping[str, Any]] = None,
                 library: Any = None, name: Optional[str] = None):
        start = time.perf_counter()
        self.graph = graph if not isinstance(graph, int) else None
        self.name = name or "graph"
        self._model = weakref.ref(model) if model is not None else None
        self._storages = _StorageTable()
        self.skipped: List[Tuple[str, str]] = []  # (name, why it is not registered)
        handle = _graph_handle(graph)

        named: List[_Named] = []
        seen_names = set()

        def add(name, slot, owner, attr, t):
            if name in seen_names:
                return
            seen_names.add(name)
            try:
                if t.numel() == 0:
                    return self.skipped.append((name, "empty"))
                if int(t.data_ptr()) == 0:
                    return self.skipped.append((name, "no data (meta or lazy tensor)"))
                named.append(_Named(name, slot, owner, attr, t, self._storages))
            except Exception as e:  # sparse, quantized, fake tensors: no plain storage
                self.skipped.append((name, f"{type(e).__name__}: {e}"))

        if model is not None:
            for name, slot, module, attr, t in _walk_model(model):
                add(name, slot, module, attr, t)
        for name, value in (tensors or {}).items():
            if hasattr(value, "untyped_storage"):
                add(name, _EXTRA_TENSOR, value, None, value)
            elif callable(value):
                add(name, _EXTRA_GETTER, value, None, value())
            else:
                raise AuditError(f"tensors['{name}'] is neither a tensor nor a callable returning one")
        self.named = named
        collected = time.perf_counter()

        lib = library if library is not None else load_library()
        if isinstance(lib, str):
            lib = load_library(lib)
        ranges = [(i, n.state.data_ptr, n.state.nbytes) for i, n in enumerate(named)]
        nodes, raw = lib.scan(handle, ranges)
        scanned = time.perf_counter()

        self.nodes: List[GraphNode] = nodes
        by_address: Dict[int, List[RawReference]] = {}
        for r in raw:
            node = nodes[r.node_index]
            if r.range_id is not None:
                named[r.range_id].readers.append(
                    Reference(node, r.field, r.param_index, r.word_offset, r.address, r.offset))
            else:
                by_address.setdefault(r.address, []).append(r)
        self.unregistered: Tuple[UnregisteredPointer, ...] = tuple(
            UnregisteredPointer(
                address=address, memory_type=rs[0].memory_type, allocation_base=rs[0].allocation_base,
                allocation_bytes=rs[0].allocation_bytes,
                readers=tuple(Reference(nodes[r.node_index], r.field, r.param_index, r.word_offset, r.address, 0)
                              for r in rs))
            for address, rs in sorted(by_address.items()))
        self.reference_count = len(raw)
        self._unscanned = tuple(n for n in nodes if not n.scanned)
        self.watched: List[_Named] = [n for n in named if n.readers]
        self._fast = [(n, n.slot, n.owner, n.attr, n.state.data_ptr, n.storage.key, n.dtype, n.shape, n.stride)
                      for n in self.watched]
        done = time.perf_counter()
        self.timings = {
            "collect_s": collected - start,
            "scan_s": scanned - collected,
            "index_s": done - scanned,
            "total_s": done - start,
        }

    # ---- the inventory

    @property
    def read_names(self) -> List[str]:
        """Named tensors some node reads: the ones check() checks."""
        return [n.name for n in self.watched]

    @property
    def unreferenced_names(self) -> List[str]:
        """Registered tensors no node argument points to: never checked (see README: a kernel that
        loads their address from memory is invisible)."""
        return [n.name for n in self.named if not n.readers]

    @property
    def unscanned_nodes(self) -> List[GraphNode]:
        """Nodes whose addresses could not be read (each has a note): their tensors go unchecked."""
        return list(self._unscanned)

    def readers(self, name: str) -> List[Reference]:
        """The node arguments that point into the named tensor."""
        for n in self.named:
            if n.name == name:
                return list(n.readers)
        raise KeyError(f"'{name}' is not a registered tensor of this audit")

    def summary(self) -> str:
        kinds: Dict[str, int] = {}
        for node in self.nodes:
            kinds[node.kind] = kinds.get(node.kind, 0) + 1
        kinds_text = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        lines = [
            f"graph '{self.name}': {len(self.nodes)} nodes ({kinds_text}), {self.reference_count} addresses",
            f"  {len(self.named)} named tensors registered, {len(self.watched)} read by the graph (checked), "
            f"{len(self.named) - len(self.watched)} not read (not checked), {len(self.skipped)} skipped",
            f"  {len(self.unregistered)} unregistered addresses (reported, not checked)",
        ]
        for u in self.unregistered[:5]:
            lines.append(f"    {u}")
        if len(self.unregistered) > 5:
            lines.append(f"    ... and {len(self.unregistered) - 5} more")
        for node in self.unscanned_nodes:
            lines.append(f"  node {node} not scanned: {node.note}")
        no_params = [n for n in self.nodes if n.kind == "kernel" and n.param_count == 0]
        if no_params:
            lines.append(f"  {len(no_params)} kernel nodes report no parameters (nothing to read, or no layout "
                         f"from the driver), e.g. {no_params[0]}")
        lines.append(f"  inventory took {self.timings['total_s'] * 1e3:.1f} ms "
                     f"(scan {self.timings['scan_s'] * 1e3:.1f} ms)")
        return "\n".join(lines)

    # ---- the check

    def _changed(self) -> List[_Named]:
        changed = []
        for n, slot, owner, attr, ptr, key, dtype, shape, stride in self._fast:
            if slot == _PARAMETER:
                module = owner()
                t = None if module is None else module._parameters.get(attr)
            elif slot == _BUFFER:
                module = owner()
                t = None if module is None else module._buffers.get(attr)
            else:  # a weakly held tensor, or a getter
                t = owner()
            if (t is None or t.data_ptr() != ptr or t.untyped_storage()._cdata != key
                    or t.dtype != dtype or t.shape != shape or t.stride() != stride):
                changed.append(n)
        return changed

    def check(self) -> CheckResult:
        """Compares every tensor the graph reads with what its name holds now. Cheap when nothing
        changed (a few attribute reads per tensor); builds detailed messages otherwise."""
        changed = self._changed()
        violations = tuple(self._diagnose(n) for n in changed)
        return CheckResult(self.name, tuple(v for v in violations if v is not None), self.unregistered,
                           len(self.watched), self._unscanned)

    def check_and_raise(self) -> CheckResult:
        """check(), raising StaleGraphError (whose message names every changed tensor) if any."""
        result = self.check()
        if not result.ok:
            raise StaleGraphError(result)
        return result

    @contextlib.contextmanager
    def guard(self):
        """``with audit.guard(): graph.replay()``: refuses to enter if the graph is stale."""
        self.check_and_raise()
        yield self

    def replay(self) -> None:
        """check_and_raise(), then the graph's replay()."""
        if self.graph is None:
            raise AuditError("this audit was made from a raw handle; replay the graph yourself")
        self.check_and_raise()
        self.graph.replay()

    # ---- diagnosis (only for tensors that changed)

    def _current_tensors(self) -> Iterator[Tuple[str, Any]]:
        model = self._model() if self._model is not None else None
        if model is not None:
            for name, _slot, _module, _attr, t in _walk_model(model):
                yield name, t
        for n in self.named:
            if n.slot in (_EXTRA_TENSOR, _EXTRA_GETTER):
                t, _ = n.current()
                if t is not None:
                    yield n.name, t

    def _occupants(self, before: TensorState, old: _Storage) -> List[Tuple[str, TensorState]]:
        """Named tensors in another storage whose bytes overlap what the graph reads."""
        lo, hi = before.data_ptr, before.data_ptr + before.nbytes
        found = []
        for name, t in self._current_tensors():
            try:
                ptr, span = int(t.data_ptr()), _span_bytes(t)
                if ptr < hi and lo < ptr + span and int(t.untyped_storage()._cdata) != old.key:
                    found.append((name, _state(t, self._storages)[0]))
            except Exception:
                continue
        return found

    def _diagnose(self, n: _Named) -> Optional[Violation]:
        before, old = n.state, n.storage
        readers = tuple(n.readers)
        read_by = f"Read by {_readers_text(readers)}."
        head = f"{n.name} ({_SLOT_NAMES[n.slot]})"
        t, where = n.current()
        if t is None:
            return Violation(n.name, REMOVED,
                             f"{head}: removed: {where}; the graph still reads {before}. {read_by}",
                             before, None, readers, (), old.alive())
        after, new = _state(t, self._storages)
        plain = "" if where in ("parameter", "buffer", "tensor") else f" (now a {where})"
        if new is old:
            diffs = [f"{label} {getattr(before, attr)} -> {getattr(after, attr)}"
                     for label, attr in (("address", "data_ptr"), ("dtype", "dtype"), ("shape", "shape"),
                                         ("stride", "stride"), ("storage offset", "storage_offset"))
                     if getattr(before, attr) != getattr(after, attr)]
            if before.storage_data_ptr != after.storage_data_ptr:
                return Violation(
                    n.name, MOVED,
                    f"{head}: moved{plain}: storage #{old.id} was reallocated in place (resize_?): it moved "
                    f"from 0x{before.storage_data_ptr:x} to 0x{after.storage_data_ptr:x}; the graph reads "
                    f"freed memory at 0x{before.data_ptr:x}. {read_by}",
                    before, after, readers, (), True)
            if not diffs and not plain:
                return None  # changed and changed back between the fast check and now
            return Violation(
                n.name, VIEW,
                f"{head}: view changed{plain} on the same storage #{old.id}: {'; '.join(diffs)}; the graph "
                f"still reads {before}. {read_by}",
                before, after, readers, (), True)
        alive = old.alive()
        occupants = [] if alive else self._occupants(before, old)
        names = tuple(name for name, _ in occupants)
        now = f"the name now holds {after}{plain}"
        if occupants:
            holders = "; ".join(f"{name} ({state})" for name, state in occupants)
            same = " (the same address: an address-only check would pass)" if before.data_ptr == after.data_ptr \
                else ""
            message = (f"{head}: reused: the graph reads {before}, which was freed, and its memory now belongs "
                       f"to {holders}; {now}{same}. Replay reads that tensor's bytes. {read_by}")
            kind = REUSED
        else:
            if alive:
                fate = "the old storage is still alive, so replay reads its stale values"
            elif alive is None:
                fate = "whether the old storage is alive is unknown"
            else:
                fate = "the old storage was freed: replay reads memory the allocator may hand to anything"
            message = f"{head}: moved: the graph reads {before}; {now}; {fate}. {read_by}"
            kind = MOVED
        return Violation(n.name, kind, message, before, after, readers, names, alive)

    def close(self) -> None:
        """Releases the weak storage references (also done when the audit is collected)."""
        self._storages.release()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _graph_handle(graph: Any) -> int:
    if isinstance(graph, int):
        return graph
    raw = getattr(graph, "raw_cuda_graph", None)
    if raw is None:
        raise AuditError(f"{type(graph).__name__} is not a CUDA graph: pass a torch.cuda.CUDAGraph "
                         "captured with keep_graph=True, or a cudaGraph_t as an int")
    try:
        handle = int(raw())
    except Exception as e:
        raise AuditError("cannot read the graph's cudaGraph_t: capture with "
                         f"torch.cuda.CUDAGraph(keep_graph=True) ({type(e).__name__}: {e})") from e
    if handle == 0:
        raise AuditError("the graph's cudaGraph_t is null: capture it first (keep_graph=True)")
    return handle


def capture(graph: Any, model: Any = None, *, tensors: Optional[Mapping[str, Any]] = None,
            library: Any = None, name: Optional[str] = None) -> GraphAudit:
    """Inventories what `graph` reads, by the names of `model`'s parameters and buffers.

    graph: a torch.cuda.CUDAGraph made with keep_graph=True (after capture), or a cudaGraph_t int.
    model: an nn.Module (every named parameter and buffer is registered), or None.
    tensors: more names: {"static_input": tensor, "kv_cache": lambda: runner.kv_cache}. A callable
        is called at each check, so a runner that swaps its static buffers is caught too.
    library: a CLibrary, a path to libnormgraph_audit.so, or None (load_library()).
    name: the graph's name in messages.
    """
    return GraphAudit(graph, model, tensors=tensors, library=library, name=name)
