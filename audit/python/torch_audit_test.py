"""normgraph_audit on real PyTorch CUDA graphs (GPU host: torch, transformers, triton).

- transformers' Qwen3.5 and Gemma3 norm modules in a decode-like stack, each with an SGLang-style
  derived buffer gemma_weight = 1 + weight used in forward, captured with torch.cuda.graph: the
  inventory names every buffer; the seed bug (a loader doing self.gemma_weight = param.data + 1.0)
  is reproduced, every moved buffer is named, and the replay is shown to be stale (equal to the old
  model's output, not to eager);
- in-place updates (copy_, load_state_dict, mul_, torch.add(..., out=)) raise nothing over many
  updates, and every replay equals eager;
- a Triton kernel from torch.compile inside the graph is inventoried;
- an address reused by a new tensor after the old one died is caught by storage identity.

Facts worth keeping (summaries, whether cuBLAS kernels' weights are visible, bitwise comparisons)
are written to $NORMGRAPH_AUDIT_OUT/torch_facts.json when that is set.

    NORMGRAPH_AUDIT_LIB=.../libnormgraph_audit.so python3 -m unittest -v torch_audit_test
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import normgraph_audit as na  # noqa: E402
import torch_models as tm  # noqa: E402

HIDDEN, LAYERS, BATCH = 256, 4, 8
FACTS = {}


def setUpModule():
    if not torch.cuda.is_available():
        raise unittest.SkipTest("no CUDA device")
    FACTS["device"] = torch.cuda.get_device_name()
    FACTS["torch"] = torch.__version__
    try:
        import transformers

        FACTS["transformers"] = transformers.__version__
    except ImportError:
        pass


def tearDownModule():
    out = os.environ.get("NORMGRAPH_AUDIT_OUT")
    if out:
        with open(os.path.join(out, "torch_facts.json"), "w") as f:
            json.dump(FACTS, f, indent=1, sort_keys=True, default=str)


def build(kind, hidden=HIDDEN, layers=LAYERS, seed=0):
    torch.manual_seed(seed)
    model = tm.DecodeStack(kind, hidden, layers, seed=seed)
    x = torch.randn(BATCH, hidden, device="cuda").to(torch.bfloat16)
    return model, x


def new_norm_weights(model, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return [torch.randn(n.weight.shape, generator=gen, device="cuda") * 0.2 + 0.3 for n in model.norms()]


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


def rel_diff(a, b):
    """Largest difference relative to the largest magnitude of b (bf16 outputs: an ulp is 2^-8)."""
    return max_diff(a, b) / max(1e-6, b.float().abs().max().item())


def allocate_at(address, shape, dtype, tries=512):
    """A new tensor that the caching allocator places at `address` (a freed block): keeps asking
    for blocks of that size, holding the misses, until one lands there."""
    held = []
    for _ in range(tries):
        t = torch.empty(shape, dtype=dtype, device="cuda")
        if t.data_ptr() == address:
            return t
        held.append(t)
    raise AssertionError(f"the allocator did not hand 0x{address:x} out again in {tries} tries")


class NormStackTest(unittest.TestCase):
    """Both models, each test as subtests."""

    def test_inventory_names_every_derived_buffer(self):
        for kind in tm.KINDS:
            with self.subTest(kind=kind):
                model, x = build(kind)
                graph, out = tm.capture(model, x)
                audit = na.capture(graph, model, name=f"{kind}/decode")
                names = set(audit.read_names)
                buffers = {f"{n}.gemma_weight" for n in model.norm_names()}
                self.assertEqual(len(buffers), 2 * LAYERS + 1)
                self.assertTrue(buffers <= names, sorted(buffers - names))
                # forward reads the derived buffer, not the parameter.
                for n in model.norm_names():
                    self.assertIn(f"{n}.weight", audit.unreferenced_names)
                reader = audit.readers("model.layers.3.input_layernorm.gemma_weight")
                self.assertTrue(reader)
                self.assertTrue(all(r.node.kind == "kernel" for r in reader))
                result = audit.check()
                self.assertTrue(result.ok, str(result))
                linear = [f"model.layers.{i}.{p}.weight" for i in range(LAYERS) for p in ("mixer", "mlp")]
                FACTS[f"{kind}.inventory"] = {
                    "summary": audit.summary(),
                    "nodes": len(audit.nodes),
                    "kernels": sorted({n.short_name for n in audit.nodes if n.kind == "kernel"}),
                    "linear_weights_read": sum(n in names for n in linear),
                    "linear_weights": len(linear),
                    "gemma_weight_readers": [str(r) for r in reader],
                    "unregistered": [str(u) for u in audit.unregistered],
                    "timings_ms": {k: v * 1e3 for k, v in audit.timings.items()},
                    "unscanned_nodes": [f"{n}: {n.note}" for n in audit.unscanned_nodes],
                }
                graph.replay()
                torch.cuda.synchronize()
                with torch.no_grad():
                    eager, hf = model(x), model.hf_forward(x)
                FACTS[f"{kind}.eager_equals_transformers_forward_bitwise"] = torch.equal(eager, hf)
                FACTS[f"{kind}.replay_equals_eager_bitwise"] = torch.equal(out, eager)
                self.assertLess(rel_diff(eager, hf), 1e-2)
                self.assertLess(rel_diff(out, eager), 1e-2)
                self.assertEqual(audit.unscanned_nodes, [], "every node's arguments were read")
                audit.close()

    def test_seed_bug_stale_replay_named_by_the_audit(self):
        """The legacy loader while the old buffers are still held elsewhere (an engine's saved
        buffer list): replay keeps reading them, bit for bit the old model's output."""
        for kind in tm.KINDS:
            with self.subTest(kind=kind):
                model, x = build(kind)
                graph, out = tm.capture(model, x)
                audit = na.capture(graph, model, name=f"{kind}/decode")
                with torch.no_grad():
                    eager_old = model(x).clone()
                graph.replay()
                torch.cuda.synchronize()
                self.assertLess(rel_diff(out, eager_old), 1e-2)
                FACTS[f"{kind}.seed_bug.replay_before_update_bitwise"] = torch.equal(out, eager_old)

                kept = dict(model.named_buffers())  # still referenced: their memory stays valid
                for norm, w in zip(model.norms(), new_norm_weights(model, seed=7)):
                    norm.legacy_load(w)
                result = audit.check()
                expected = {f"{n}.gemma_weight" for n in model.norm_names()}
                self.assertEqual(set(result.names), expected)
                for v in result.violations:
                    self.assertEqual(v.kind, na.MOVED, v.message)
                    self.assertIn("still alive, so replay reads its stale values", v.message)
                    self.assertTrue(v.message.startswith(v.name + " (buffer): moved"), v.message)
                    self.assertIn("Read by", v.message)
                    self.assertTrue(v.readers)
                    self.assertIn(v.readers[0].node.short_name, v.message)
                with self.assertRaises(na.StaleGraphError) as raised:
                    audit.check_and_raise()
                self.assertIn("model.layers.3.input_layernorm.gemma_weight", str(raised.exception))
                with self.assertRaises(na.StaleGraphError):
                    with audit.guard():
                        self.fail("guard must not enter")

                graph.replay()  # what an engine without the audit does
                torch.cuda.synchronize()
                with torch.no_grad():
                    eager_new = model(x)
                    hf_new = model.hf_forward(x)
                stale_vs_old, stale_vs_new = rel_diff(out, eager_old), rel_diff(out, eager_new)
                FACTS[f"{kind}.seed_bug"] = {
                    "violations": len(result.violations),
                    "first_message": result.violations[0].message,
                    "replay_vs_old_model_rel_diff": stale_vs_old,
                    "replay_equals_old_model_bitwise": torch.equal(out, eager_old),
                    "replay_vs_eager_rel_diff": stale_vs_new,
                    "replay_vs_eager_max_abs_diff": max_diff(out, eager_new),
                    "eager_equals_transformers_forward_bitwise": torch.equal(eager_new, hf_new),
                }
                self.assertLess(rel_diff(eager_new, hf_new), 1e-2)
                self.assertLess(stale_vs_old, 1e-2, "replay reads the old buffers")
                self.assertGreater(stale_vs_new, 0.05, "and so differs from eager")
                del kept
                audit.close()

    def test_seed_bug_freed_buffers_are_moved_or_reused(self):
        """The legacy loader with nothing else holding the old buffers: they are freed, and the
        caching allocator hands their blocks to the next new buffers."""
        for kind in tm.KINDS:
            with self.subTest(kind=kind):
                model, x = build(kind)
                graph, out = tm.capture(model, x)
                audit = na.capture(graph, model, name=f"{kind}/decode")
                for norm, w in zip(model.norms(), new_norm_weights(model, seed=9)):
                    norm.legacy_load(w)
                result = audit.check()
                self.assertEqual(set(result.names), {f"{n}.gemma_weight" for n in model.norm_names()})
                kinds = {}
                for v in result.violations:
                    self.assertIn(v.kind, (na.MOVED, na.REUSED), v.message)
                    self.assertIs(v.old_storage_alive, False)
                    kinds[v.kind] = kinds.get(v.kind, 0) + 1
                    if v.kind == na.REUSED:
                        self.assertTrue(v.occupants)
                graph.replay()
                torch.cuda.synchronize()
                with torch.no_grad():
                    eager_new = model(x)
                reused = [v for v in result.violations if v.kind == na.REUSED]
                FACTS[f"{kind}.freed"] = {
                    "kinds": kinds,
                    "example_reused": reused[0].message if reused else None,
                    "replay_vs_eager_rel_diff": rel_diff(out, eager_new),
                }
                audit.close()

    def test_in_place_updates_raise_nothing(self):
        for kind in tm.KINDS:
            with self.subTest(kind=kind):
                model, x = build(kind)
                graph, out = tm.capture(model, x)
                audit = na.capture(graph, model, name=f"{kind}/decode")
                gen = torch.Generator(device="cuda").manual_seed(11)
                methods = ("copy_", "load_state_dict", "mul_", "torch.add(out=)")
                bitwise, worst = 0, 0.0
                cycles = 40
                for cycle in range(cycles):
                    method = methods[cycle % len(methods)]
                    with torch.no_grad():
                        if method == "copy_":
                            for norm, w in zip(model.norms(), new_norm_weights(model, seed=100 + cycle)):
                                norm.load(w)
                        elif method == "load_state_dict":
                            state = {k: v * 0.9 + 0.01 for k, v in model.state_dict().items()}
                            model.load_state_dict(state)
                            for norm in model.norms():
                                norm.refresh()
                        elif method == "mul_":
                            for p in model.parameters():
                                p.mul_(0.97)
                            for norm in model.norms():
                                norm.refresh()
                        else:
                            for p in model.parameters():
                                delta = torch.randn(p.shape, generator=gen, device="cuda").to(p.dtype) * 0.01
                                torch.add(p, delta, out=p)
                            for norm in model.norms():
                                norm.refresh()
                    audit.check_and_raise()
                    with audit.guard():
                        graph.replay()
                    torch.cuda.synchronize()
                    with torch.no_grad():
                        eager = model(x)
                    bitwise += torch.equal(out, eager)
                    worst = max(worst, rel_diff(out, eager))
                    self.assertLess(rel_diff(out, eager), 1e-2, f"cycle {cycle} ({method})")
                FACTS[f"{kind}.in_place"] = {"cycles": cycles, "replays_bitwise_equal_to_eager": bitwise,
                                             "worst_rel_diff": worst}
                audit.close()

    def test_unregistered_addresses_are_reported_not_failed(self):
        model, x = build("qwen3_5")
        graph, out = tm.capture(model, x)
        audit = na.capture(graph, model)
        addresses = {u.address for u in audit.unregistered}
        self.assertIn(x.data_ptr(), addresses)
        self.assertIn(out.data_ptr(), addresses)
        self.assertTrue(audit.check().ok)
        audit.close()
        named = na.capture(graph, model, tensors={"static_input": x, "static_output": lambda: out})
        self.assertIn("static_input", named.read_names)
        self.assertIn("static_output", named.read_names)
        self.assertNotIn(x.data_ptr(), {u.address for u in named.unregistered})
        FACTS["unregistered_after_naming_io"] = [str(u) for u in named.unregistered]
        named.close()


class TritonTest(unittest.TestCase):
    def test_torch_compile_triton_kernel_is_inventoried(self):
        kind = "gemma3"
        norm = tm.norm_class(kind)(HIDDEN, tm.config_eps(kind)).cuda()
        with torch.no_grad():
            norm.weight.copy_(torch.randn(HIDDEN, device="cuda") * 0.2)
            norm.refresh()
        compiled = torch.compile(norm)
        x = torch.randn(BATCH, HIDDEN, device="cuda").to(torch.bfloat16)
        with torch.no_grad():
            for _ in range(3):
                compiled(x)
        graph, out = tm.capture(compiled, x)
        audit = na.capture(graph, norm, name="compiled_norm")
        readers = audit.readers("gemma_weight")
        triton = [r for r in readers if "triton" in r.node.name]
        FACTS["triton"] = {"kernels": [n.name for n in audit.nodes if n.kind == "kernel"],
                           "gemma_weight_readers": [str(r) for r in readers], "summary": audit.summary()}
        self.assertTrue(triton, f"no Triton kernel reads gemma_weight: {[str(r) for r in readers]}")
        self.assertTrue(audit.check().ok)
        norm.legacy_load(torch.randn(HIDDEN, device="cuda"))
        (violation,) = audit.check().violations
        self.assertEqual(violation.name, "gemma_weight")
        self.assertIn(triton[0].node.short_name, violation.message)
        audit.close()


class StorageIdentityTest(unittest.TestCase):
    def test_address_reused_by_the_same_name(self):
        model, x = build("gemma3", hidden=2816, layers=2)
        graph, out = tm.capture(model, x)
        audit = na.capture(graph, model)
        norm = model.model.layers[0].input_layernorm
        name = "model.layers.0.input_layernorm.gemma_weight"
        old_ptr, shape = norm.gemma_weight.data_ptr(), norm.gemma_weight.shape
        norm.gemma_weight = None  # the old storage dies here
        torch.cuda.synchronize()
        new = allocate_at(old_ptr, shape, torch.float32)
        with torch.no_grad():
            new.copy_(norm.weight.float() + 1.0)
        norm.gemma_weight = new
        self.assertEqual(norm.gemma_weight.data_ptr(), old_ptr, "an address-only check would pass")
        (violation,) = audit.check().violations
        self.assertEqual(violation.name, name)
        self.assertEqual(violation.kind, na.REUSED)
        self.assertIn(name, violation.occupants)
        self.assertIn("an address-only check would pass", violation.message)
        FACTS["reuse_same_name"] = violation.message
        audit.close()

    def test_address_reused_by_another_tensor(self):
        model, x = build("qwen3_5", hidden=2816, layers=2)
        graph, out = tm.capture(model, x)
        audit = na.capture(graph, model)
        norm = model.model.layers[1].post_attention_layernorm
        name = "model.layers.1.post_attention_layernorm.gemma_weight"
        old_ptr, shape = norm.gemma_weight.data_ptr(), norm.gemma_weight.shape
        with torch.no_grad():
            norm.gemma_weight = norm.weight.float() + 1.0  # new block; then the old one is freed
        torch.cuda.synchronize()
        model.register_buffer("scratch", allocate_at(old_ptr, shape, torch.float32))
        (violation,) = audit.check().violations
        self.assertEqual(violation.name, name)
        self.assertEqual(violation.kind, na.REUSED)
        self.assertEqual(violation.occupants, ("scratch",))
        FACTS["reuse_other_tensor"] = violation.message
        audit.close()

    def test_view_change_on_the_same_storage(self):
        model, x = build("gemma3", layers=1)
        graph, out = tm.capture(model, x)
        audit = na.capture(graph, model)
        model.model.norm.gemma_weight.as_strided_((HIDDEN // 2,), (2,))
        (violation,) = audit.check().violations
        self.assertEqual(violation.kind, na.VIEW)
        self.assertIn("shape (256,) -> (128,)", violation.message)
        audit.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
