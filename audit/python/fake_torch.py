"""A stand-in for the parts of PyTorch that normgraph_audit uses, for tests without torch or a GPU.

It models what the audit relies on, with PyTorch's semantics:
- storages are reference counted (Python's own refcounts of tensors and storage wrappers), and
  their memory goes back to a caching allocator that hands the most recently freed block of a
  size out again, as PyTorch's does on one stream;
- a storage's key (`_cdata`, the StorageImpl address in PyTorch) comes from a heap that reuses
  freed keys, unless a weak reference (`_weak_ref`) keeps the StorageImpl alive;
- modules keep parameters, buffers and submodules in `_parameters`, `_buffers`, `_modules`, and
  `__setattr__` files values there as nn.Module does;
- `param.data = t`, `set_`, `as_strided_` change a tensor's storage or view in place.

FakeGraph records kernel launches (the addresses of their arguments at launch) and FakeLibrary
answers `scan` as libnormgraph_audit.so does.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import normgraph_audit as na


class FakeDtype:
    def __init__(self, name: str, itemsize: int):
        self.name, self.itemsize = name, itemsize

    def __str__(self):
        return "torch." + self.name

    __repr__ = __str__


float32 = FakeDtype("float32", 4)
bfloat16 = FakeDtype("bfloat16", 2)


class CachingAllocator:
    """Device addresses in 512-byte blocks; a freed block of a size is reused last-in first-out."""

    def __init__(self):
        self.next = 0x7F0000000000
        self.free: Dict[int, List[int]] = {}
        self.live: Dict[int, int] = {}  # address -> bytes

    @staticmethod
    def _round(nbytes: int) -> int:
        return max(512, (nbytes + 511) // 512 * 512)

    def alloc(self, nbytes: int) -> int:
        size = self._round(nbytes)
        blocks = self.free.get(size)
        address = blocks.pop() if blocks else None
        if address is None:
            address, self.next = self.next, self.next + size
        self.live[address] = size
        return address

    def release(self, address: int) -> None:
        size = self.live.pop(address)
        self.free.setdefault(size, []).append(address)

    def owner_size(self, address: int) -> Optional[Tuple[int, int]]:
        for base, size in self.live.items():
            if base <= address < base + size:
                return base, size
        return None


ALLOCATOR = CachingAllocator()


class _Heap:
    """StorageImpl addresses: freed keys are handed out again (most recent first)."""

    def __init__(self):
        self.next, self.free, self.impls = 0x5000, [], {}

    def new(self, impl) -> int:
        key = self.free.pop() if self.free else None
        if key is None:
            key, self.next = self.next, self.next + 0x40
        self.impls[key] = impl
        return key

    def drop(self, key: int) -> None:
        del self.impls[key]
        self.free.append(key)


HEAP = _Heap()


class _StorageImpl:
    def __init__(self, nbytes: int):
        self.nbytes, self.address = nbytes, ALLOCATOR.alloc(nbytes)
        self.strong = self.weak = 0
        self.key = HEAP.new(self)

    def incref(self):
        self.strong += 1

    def decref(self):
        self.strong -= 1
        if self.strong == 0:
            ALLOCATOR.release(self.address)
            self.address = 0
            if self.weak == 0:
                HEAP.drop(self.key)


class UntypedStorage:
    def __init__(self, impl: _StorageImpl):
        self._impl = impl
        impl.incref()

    def __del__(self):
        self._impl.decref()

    @property
    def _cdata(self) -> int:
        return self._impl.key

    def data_ptr(self) -> int:
        return self._impl.address

    def nbytes(self) -> int:
        return self._impl.nbytes

    def _weak_ref(self) -> int:
        self._impl.weak += 1
        return self._impl.key

    @staticmethod
    def _expired(key: int) -> bool:
        impl = HEAP.impls.get(key)
        return impl is None or impl.strong == 0

    @staticmethod
    def _free_weak_ref(key: int) -> None:
        impl = HEAP.impls[key]
        impl.weak -= 1
        if impl.weak == 0 and impl.strong == 0:
            HEAP.drop(key)


def weak_refs_held() -> int:
    return sum(impl.weak for impl in HEAP.impls.values())


class Tensor:
    def __init__(self, impl: _StorageImpl, dtype: FakeDtype, shape: Sequence[int],
                 stride: Optional[Sequence[int]] = None, offset: int = 0):
        impl.incref()
        self._impl, self.dtype, self._offset = impl, dtype, offset
        self._shape = tuple(shape)
        self._stride = tuple(stride) if stride is not None else _contiguous(self._shape)
        self.device = "cuda:0"
        self.version = 0

    def __del__(self):
        self._impl.decref()

    @property
    def shape(self):
        return self._shape

    def stride(self):
        return self._stride

    def numel(self) -> int:
        n = 1
        for s in self._shape:
            n *= s
        return n

    def element_size(self) -> int:
        return self.dtype.itemsize

    def storage_offset(self) -> int:
        return self._offset

    def data_ptr(self) -> int:
        return self._impl.address + self._offset * self.dtype.itemsize

    def untyped_storage(self) -> UntypedStorage:
        return UntypedStorage(self._impl)

    # In-place updates: same storage, same view.
    def copy_(self, other: "Tensor") -> "Tensor":
        self.version += 1
        return self

    def mul_(self, value) -> "Tensor":
        self.version += 1
        return self

    # Storage / view changes in place.
    def set_(self, other: "Tensor") -> "Tensor":
        other._impl.incref()
        self._impl.decref()
        self._impl, self.dtype = other._impl, other.dtype
        self._shape, self._stride, self._offset = other._shape, other._stride, other._offset
        return self

    def as_strided_(self, shape, stride, offset: int = 0) -> "Tensor":
        self._shape, self._stride, self._offset = tuple(shape), tuple(stride), offset
        return self

    @property
    def data(self) -> "Tensor":
        return Tensor(self._impl, self.dtype, self._shape, self._stride, self._offset)

    @data.setter
    def data(self, other: "Tensor") -> None:
        self.set_(other)

    def __add__(self, value) -> "Tensor":
        return empty(self._shape, self.dtype)


class Parameter(Tensor):
    def __init__(self, t: Tensor):
        super().__init__(t._impl, t.dtype, t._shape, t._stride, t._offset)


def _contiguous(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    stride, acc = [], 1
    for s in reversed(shape):
        stride.append(acc)
        acc *= s
    return tuple(reversed(stride))


def empty(shape: Sequence[int], dtype: FakeDtype = float32) -> Tensor:
    n = 1
    for s in shape:
        n *= s
    return Tensor(_StorageImpl(n * dtype.itemsize), dtype, shape)


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})

    def register_buffer(self, name: str, t: Optional[Tensor]) -> None:
        self._buffers[name] = t

    def __setattr__(self, name, value):
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            buffers.pop(name, None)
            modules.pop(name, None)
            params[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign a plain tensor to parameter '{name}'")
            params[name] = None
        elif isinstance(value, Module):
            modules[name] = value
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer '{name}'")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__[table]
            if name in d:
                return d[name]
        raise AttributeError(name)

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)


class FakeGraph:
    """Kernel launches with the addresses their arguments held at capture."""

    def __init__(self):
        self.launches: List[Tuple[str, List[int]]] = []

    def launch(self, name: str, *args) -> None:
        self.launches.append((name, [a if isinstance(a, int) else a.data_ptr() for a in args]))

    def raw_cuda_graph(self) -> int:
        return 0xC0FFEE

    def replay(self) -> None:
        self.replays = getattr(self, "replays", 0) + 1


class FakeLibrary:
    """Answers scan() as libnormgraph_audit.so does, for a FakeGraph."""

    def __init__(self, graph: FakeGraph):
        self.graph = graph
        self.scans = 0

    def scan(self, handle: int, ranges):
        assert handle == 0xC0FFEE
        self.scans += 1
        nodes, refs = [], []
        for index, (name, addresses) in enumerate(self.graph.launches):
            nodes.append(na.GraphNode(index=index, kind="kernel", name=name, display_name=name,
                                      param_count=len(addresses), argument_bytes=8 * len(addresses)))
            for param, address in enumerate(addresses):
                matched = [(rid, address - start) for rid, start, nbytes in ranges
                           if start <= address < start + nbytes]
                for rid, offset in matched:
                    refs.append(na.RawReference(index, "argument", param, 8 * param, 8 * param, address, rid,
                                                offset))
                if not matched:
                    owner = ALLOCATOR.owner_size(address)
                    if owner is not None:
                        refs.append(na.RawReference(index, "argument", param, 8 * param, 8 * param, address,
                                                    None, 0, "device", owner[0], owner[1]))
        return nodes, refs
