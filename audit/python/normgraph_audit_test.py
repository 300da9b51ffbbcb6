"""normgraph_audit's logic without torch or a GPU (fake_torch stands in for both).

The same scenarios run on the GPU host with real PyTorch graphs in torch_audit_test.py; here every
branch of the check and of its messages is pinned down, including the ones a GPU run cannot force
(a storage resized in place, a name turned plain attribute, a module swapped out).
"""

import gc
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fake_torch as ft  # noqa: E402
import normgraph_audit as na  # noqa: E402

HIDDEN = 256


class Norm(ft.Module):
    """A zero-centred RMSNorm with an SGLang-style derived buffer gemma_weight = 1 + weight."""

    def __init__(self):
        super().__init__()
        self.weight = ft.Parameter(ft.empty([HIDDEN]))
        self.register_buffer("gemma_weight", ft.empty([HIDDEN]))

    def legacy_load(self, loaded):  # the seed bug: a new allocation
        self.weight.data.copy_(loaded)
        self.gemma_weight = self.weight.data + 1.0

    def load(self, loaded):  # the fix: in place
        self.weight.data.copy_(loaded)
        self.gemma_weight.copy_(loaded)


class Layer(ft.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm = Norm()
        self.mixer = ft.Module()
        self.mixer.weight = ft.Parameter(ft.empty([HIDDEN, HIDDEN], ft.bfloat16))


class Inner(ft.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = ft.Module()
        for i in range(layers):
            setattr(self.layers, str(i), Layer())


class Stack(ft.Module):
    def __init__(self, layers=3):
        super().__init__()
        self.model = Inner(layers)

    def layer(self, i) -> Layer:
        return self.model.layers._modules[str(i)]


def capture_decode(model: Stack, static_input, workspace, extra_tensors=None):
    """A decode-step graph: per layer a norm kernel (reads gemma_weight) and a matmul."""
    graph = ft.FakeGraph()
    for i in range(len(model.model.layers._modules)):
        layer = model.layer(i)
        graph.launch("void at::native::rms_norm_kernel<float, 4>(float const*, float*, float const*, int)",
                     static_input, layer.input_layernorm.gemma_weight, 4096)
        graph.launch("sm90_xmma_gemm_bf16bf16", static_input, layer.mixer.weight, workspace)
    audit = na.capture(graph, model, library=ft.FakeLibrary(graph), name="decode/b8",
                       tensors=extra_tensors)
    return graph, audit


class AuditTest(unittest.TestCase):
    def setUp(self):
        self.model = Stack()
        self.static_input = ft.empty([8, HIDDEN], ft.bfloat16)
        self.workspace = ft.empty([1 << 20], ft.bfloat16)

    def tearDown(self):
        if getattr(self, "audit", None) is not None:
            self.audit.close()

    def capture(self, **kwargs):
        self.graph, self.audit = capture_decode(self.model, self.static_input, self.workspace, **kwargs)
        return self.audit

    def test_inventory_names_what_each_node_reads(self):
        audit = self.capture()
        self.assertEqual(
            sorted(audit.read_names),
            sorted([f"model.layers.{i}.input_layernorm.gemma_weight" for i in range(3)]
                   + [f"model.layers.{i}.mixer.weight" for i in range(3)]))
        self.assertEqual(sorted(audit.unreferenced_names),
                         sorted(f"model.layers.{i}.input_layernorm.weight" for i in range(3)))
        readers = audit.readers("model.layers.1.input_layernorm.gemma_weight")
        self.assertEqual(len(readers), 1)
        self.assertEqual(readers[0].node.index, 2)
        self.assertEqual(readers[0].param_index, 1)
        self.assertEqual(str(readers[0]), "#2 at::native::rms_norm_kernel<…> (argument 1, word +8)")
        # The static input (6 nodes) and the workspace (3 nodes): reported, not checked.
        self.assertEqual(len(audit.unregistered), 2)
        by_address = {u.address: u for u in audit.unregistered}
        self.assertEqual(len(by_address[self.static_input.data_ptr()].readers), 6)
        self.assertEqual(by_address[self.workspace.data_ptr()].memory_type, "device")
        self.assertIn("unregistered addresses", audit.summary())
        self.assertIn("6 read by the graph", audit.summary())
        result = audit.check()
        self.assertTrue(result.ok, str(result))
        self.assertEqual(result.checked, 6)
        self.assertIn("6 named tensors it reads are unchanged", str(result))
        with self.assertRaises(KeyError):
            audit.readers("model.nope")

    def test_in_place_updates_raise_nothing_over_many_updates(self):
        audit = self.capture()
        for cycle in range(50):
            for i in range(3):
                self.model.layer(i).input_layernorm.load(ft.empty([HIDDEN]))
                self.model.layer(i).mixer.weight.mul_(0.5)
            audit.check_and_raise()
            with audit.guard():
                self.graph.replay()
        self.assertEqual(self.graph.replays, 50)

    def test_legacy_loader_names_every_moved_buffer(self):
        audit = self.capture()
        before = {i: self.model.layer(i).input_layernorm.gemma_weight.data_ptr() for i in range(3)}
        for i in range(3):
            self.model.layer(i).input_layernorm.legacy_load(ft.empty([HIDDEN]))
        result = audit.check()
        self.assertFalse(result.ok)
        names = sorted(result.names)
        self.assertEqual(names, [f"model.layers.{i}.input_layernorm.gemma_weight" for i in range(3)])
        kinds = {v.name: v.kind for v in result.violations}
        # Layer 0's freed block went to layer 1's new buffer, layer 1's to layer 2's: the graph's
        # layer 0 and 1 nodes now read another layer's weights. Layer 2's block is free.
        self.assertEqual(kinds["model.layers.0.input_layernorm.gemma_weight"], na.REUSED)
        self.assertEqual(kinds["model.layers.1.input_layernorm.gemma_weight"], na.REUSED)
        self.assertEqual(kinds["model.layers.2.input_layernorm.gemma_weight"], na.MOVED)
        v0 = next(v for v in result.violations if v.name.startswith("model.layers.0."))
        self.assertEqual(v0.occupants, ("model.layers.1.input_layernorm.gemma_weight",))
        self.assertEqual(self.model.layer(1).input_layernorm.gemma_weight.data_ptr(), before[0])
        self.assertIn("its memory now belongs to model.layers.1.input_layernorm.gemma_weight", v0.message)
        self.assertIn("at::native::rms_norm_kernel<…>", v0.message)
        v2 = next(v for v in result.violations if v.name.startswith("model.layers.2."))
        self.assertIn("the old storage was freed", v2.message)
        self.assertIs(v2.old_storage_alive, False)
        self.assertIs(v2.before.storage_alive, True, "as it was at capture")
        with self.assertRaises(na.StaleGraphError) as raised:
            audit.check_and_raise()
        self.assertIn("3 of the 6 named tensors it reads changed", str(raised.exception))
        self.assertIs(raised.exception.result.violations[0].kind, na.REUSED)
        entered = []
        with self.assertRaises(na.StaleGraphError):
            with audit.guard():
                entered.append(True)
        self.assertEqual(entered, [])
        with self.assertRaises(na.StaleGraphError):
            audit.replay()
        self.assertFalse(hasattr(self.graph, "replays"))

    def test_a_new_buffer_while_the_old_is_alive_is_moved_and_stale(self):
        audit = self.capture()
        norm = self.model.layer(0).input_layernorm
        keep = norm.gemma_weight  # someone still holds the old buffer
        norm.gemma_weight = ft.empty([HIDDEN])
        (violation,) = audit.check().violations
        self.assertEqual(violation.kind, na.MOVED)
        self.assertIn("still alive, so replay reads its stale values", violation.message)
        self.assertNotEqual(violation.before.storage_id, violation.after.storage_id)
        del keep

    def test_address_reused_by_the_same_name_is_caught_by_storage_identity(self):
        audit = self.capture()
        norm = self.model.layer(1).input_layernorm
        old_ptr = norm.gemma_weight.data_ptr()
        norm.gemma_weight = None  # frees the old storage
        norm.gemma_weight = ft.empty([HIDDEN])  # the allocator hands the same block out again
        self.assertEqual(norm.gemma_weight.data_ptr(), old_ptr, "an address-only check would pass")
        (violation,) = audit.check().violations
        self.assertEqual(violation.kind, na.REUSED)
        self.assertEqual(violation.occupants, ("model.layers.1.input_layernorm.gemma_weight",))
        self.assertIn("the same address: an address-only check would pass", violation.message)

    def test_address_reused_by_another_tensor(self):
        audit = self.capture()
        norm = self.model.layer(2).input_layernorm
        norm.gemma_weight = ft.empty([HIDDEN])  # old freed after the new one is allocated
        self.model.scratch = ft.Module()
        self.model.scratch.register_buffer("kv", ft.empty([HIDDEN]))  # lands on the old block
        (violation,) = audit.check().violations
        self.assertEqual(violation.kind, na.REUSED)
        self.assertEqual(violation.occupants, ("scratch.kv",))

    def test_storage_keys_are_not_reused_while_the_audit_holds_them(self):
        held_before = ft.weak_refs_held()
        audit = self.capture()
        norm = self.model.layer(0).input_layernorm
        old_key = norm.gemma_weight.untyped_storage()._cdata
        norm.gemma_weight = None
        norm.gemma_weight = ft.empty([HIDDEN])
        self.assertNotEqual(norm.gemma_weight.untyped_storage()._cdata, old_key)
        self.assertEqual(len(audit.check().violations), 1)
        self.assertGreater(ft.weak_refs_held(), held_before)
        audit.close()
        self.assertEqual(ft.weak_refs_held(), held_before)

    def test_audit_keeps_nothing_alive_and_releases_weak_refs_when_collected(self):
        held_before = ft.weak_refs_held()
        self.capture()
        self.assertGreater(ft.weak_refs_held(), held_before)
        self.audit = None
        gc.collect()
        self.assertEqual(ft.weak_refs_held(), held_before)

    def test_parameter_data_assignment_moves_the_storage(self):
        audit = self.capture()
        weight = self.model.layer(0).mixer.weight
        weight.data = ft.empty([HIDDEN, HIDDEN], ft.bfloat16)
        (violation,) = audit.check().violations
        self.assertEqual(violation.name, "model.layers.0.mixer.weight")
        self.assertIn(violation.kind, (na.MOVED, na.REUSED))
        self.assertIn("(parameter)", violation.message)

    def test_view_changes_on_the_same_storage(self):
        audit = self.capture()
        buf = self.model.layer(0).input_layernorm.gemma_weight
        buf.as_strided_([HIDDEN // 2], [2])
        (violation,) = audit.check().violations
        self.assertEqual(violation.kind, na.VIEW)
        self.assertIn("shape (256,) -> (128,)", violation.message)
        self.assertIn("stride (1,) -> (2,)", violation.message)

    def test_storage_reallocated_in_place(self):
        audit = self.capture()
        buf = self.model.layer(0).input_layernorm.gemma_weight
        impl = buf._impl
        ft.ALLOCATOR.release(impl.address)
        impl.address = ft.ALLOCATOR.alloc(4 * HIDDEN * 4)  # what resize_ does to a storage
        (violation,) = audit.check().violations
        self.assertEqual(violation.kind, na.MOVED)
        self.assertIn("reallocated in place", violation.message)

    def test_removed_names_and_replaced_modules(self):
        audit = self.capture()
        del self.model.layer(0).input_layernorm.gemma_weight
        self.model.layer(1).input_layernorm = Norm()  # the old module dies
        result = audit.check()
        kinds = {v.name: (v.kind, v.message) for v in result.violations}
        kind, message = kinds["model.layers.0.input_layernorm.gemma_weight"]
        self.assertEqual(kind, na.REMOVED)
        self.assertIn("no buffer or attribute 'gemma_weight'", message)
        kind, message = kinds["model.layers.1.input_layernorm.gemma_weight"]
        self.assertEqual(kind, na.REMOVED)
        self.assertIn("module was deleted or replaced", message)
        self.assertEqual(len(result.violations), 2)

    def test_a_buffer_turned_plain_attribute_is_followed(self):
        audit = self.capture()
        norm = self.model.layer(0).input_layernorm
        del norm._buffers["gemma_weight"]
        object.__setattr__(norm, "gemma_weight", ft.empty([HIDDEN]))
        (violation,) = audit.check().violations
        self.assertIn("plain attribute", violation.message)
        self.assertIsNotNone(violation.after)

    def test_extra_tensors_and_getters(self):
        class Runner:
            pass

        runner = Runner()
        runner.static_input = self.static_input
        audit = self.capture(extra_tensors={"runner.static_input": lambda: runner.static_input,
                                            "workspace": self.workspace})
        self.assertIn("runner.static_input", audit.read_names)
        self.assertIn("workspace", audit.read_names)
        self.assertEqual(audit.unregistered, ())
        self.assertTrue(audit.check().ok)
        runner.static_input = ft.empty([8, HIDDEN], ft.bfloat16)
        (violation,) = audit.check().violations
        self.assertEqual(violation.name, "runner.static_input")
        self.assertEqual(violation.kind, na.MOVED)
        self.assertEqual(len(violation.readers), 6)
        self.assertIn("6 nodes", violation.message)
        self.assertIn("and 3 more", violation.message)

    def test_a_weakly_held_extra_tensor_that_dies_is_removed(self):
        audit = self.capture(extra_tensors={"workspace": self.workspace})
        self.workspace = None
        self.graph.launches.clear()
        (violation,) = audit.check().violations
        self.assertEqual(violation.kind, na.REMOVED)

    def test_tied_weights_are_checked_under_every_name(self):
        shared = self.model.layer(0).mixer.weight
        self.model.layer(1).mixer.weight = shared
        audit = self.capture()
        self.assertIn("model.layers.0.mixer.weight", audit.read_names)
        self.assertIn("model.layers.1.mixer.weight", audit.read_names)
        self.model.layer(1).mixer.weight = ft.Parameter(ft.empty([HIDDEN, HIDDEN], ft.bfloat16))
        result = audit.check()
        self.assertEqual(result.names, ["model.layers.1.mixer.weight"])
        self.assertEqual(result.violations[0].kind, na.MOVED)
        self.assertIn("still alive", result.violations[0].message)

    def test_empty_and_storageless_tensors_are_skipped(self):
        self.model.layer(0).register_buffer("empty", ft.empty([0]))

        class Broken(ft.Tensor):
            def untyped_storage(self):
                raise RuntimeError("sparse tensors have no storage")

        broken = Broken(ft._StorageImpl(16), ft.float32, [4])
        self.model.layer(0).register_buffer("sparse", broken)
        audit = self.capture()
        skipped = dict(audit.skipped)
        self.assertEqual(skipped["model.layers.0.empty"], "empty")
        self.assertIn("sparse tensors have no storage", skipped["model.layers.0.sparse"])

    def test_graph_handles(self):
        with self.assertRaisesRegex(na.AuditError, "not a CUDA graph"):
            na.capture(object(), self.model, library=ft.FakeLibrary(ft.FakeGraph()))

        class NotKept:
            def raw_cuda_graph(self):
                raise RuntimeError("keep_graph must be True")

        with self.assertRaisesRegex(na.AuditError, r"keep_graph=True"):
            na.capture(NotKept(), self.model, library=ft.FakeLibrary(ft.FakeGraph()))
        with self.assertRaisesRegex(na.AuditError, "neither a tensor nor a callable"):
            na.capture(0xC0FFEE, None, tensors={"x": 3}, library=ft.FakeLibrary(ft.FakeGraph()))
        audit = na.capture(0xC0FFEE, self.model, library=ft.FakeLibrary(ft.FakeGraph()))
        with self.assertRaisesRegex(na.AuditError, "raw handle"):
            audit.replay()


class LibraryTest(unittest.TestCase):
    def test_missing_library_says_how_to_build_it(self):
        with self.assertRaisesRegex(na.AuditError, r"bazel build --config=cuda -c opt //audit"):
            na.load_library("/nonexistent/libnormgraph_audit.so")

    def test_struct_layouts_match_the_header(self):
        import ctypes

        self.assertEqual(ctypes.sizeof(na._CNode), 56)
        self.assertEqual(ctypes.sizeof(na._CReference), 72)
        self.assertEqual(na._CReference.node_index.offset, 40)
        self.assertEqual(na._CReference.memory_type.offset, 64)
        self.assertEqual(na._CNode.index.offset, 24)

    @unittest.skipUnless(os.environ.get("NORMGRAPH_AUDIT_LIB"), "set NORMGRAPH_AUDIT_LIB to the built library")
    def test_the_built_library_loads_and_reports_errors(self):
        lib = na.load_library(os.environ["NORMGRAPH_AUDIT_LIB"])
        with self.assertRaises(na.AuditError) as raised:
            lib.scan(0, [(0, 0x1000, 16)])
        self.assertIn("scanning graph 0x0", str(raised.exception))
        with self.assertRaisesRegex(na.AuditError, "NGAUDIT_INVALID_ARGUMENT.*empty"):
            lib.scan(0, [(0, 0x1000, 0)])


class ShortNameTest(unittest.TestCase):
    def test_short_kernel_names(self):
        self.assertEqual(
            na.short_kernel_name("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add"
                                 "<float>, std::array<char*, 3ul> >(int, at::native::CUDAFunctor_add<float>, "
                                 "std::array<char*, 3ul>)"),
            "at::native::vectorized_elementwise_kernel<…>")
        self.assertEqual(na.short_kernel_name("void (anonymous namespace)::k(float*)"), "(anonymous namespace)::k")
        self.assertEqual(na.short_kernel_name("triton_red_fused_add_mean_0"), "triton_red_fused_add_mean_0")
        self.assertEqual(na.short_kernel_name("memcpy"), "memcpy")
        self.assertEqual(na.short_kernel_name("(broken"), "(broken")


if __name__ == "__main__":
    unittest.main()
