#!/usr/bin/env python3
"""Times normgraph's peers on the same GPU and shapes as benchmarks/cuda_*_benchmark.

    python3 tools/bench/peers.py --out peers.json [--budget-s 240] [--quick | --stack-only]
                                 [--variants rms,zero_centred,gated,fused_add]
                                 [--peers torch_eager,hf_eager,torch_compile]
                                 [--outputs ring|reuse|both] [--prefill-shapes 4096x1536,...]

Peers (PyTorch 2.11, transformers 5.17 on the GPU host):
  - torch_eager:   F.rms_norm (rms), and the expressions transformers' modules run, eagerly;
  - hf_eager:      transformers' modules themselves (LlamaRMSNorm, Qwen3_5RMSNorm,
                   Qwen3_5RMSNormGated; fused_add = the decoder layer's `residual + x`, then
                   Qwen3_5RMSNorm);
  - torch_compile: the same expressions under torch.compile (Inductor), compiled once per shape
                   (dynamic=False, a raised recompile limit, torch._dynamo.reset() between
                   variants);
  - the 256-norm decode stack (256 chained F.rms_norm over [batch, 4096] bf16) captured in one
    torch.cuda.CUDAGraph and replayed back to back.

Method, as normgraph's benchmarks (benchmarks/cuda_norm_benchmark.cc): every call is captured
`reps` times into a CUDA graph rotating over input sets larger than the 60 MiB L2 where the shape
allows, replayed twice to warm up, then seven times between CUDA events; the time per call is the
median replay over reps. Inputs are random normal (never zeros). Each call's outputs are kept
alive for `sets` calls, so they rotate over as many buffers as normgraph's outputs do (--outputs
ring, the default): left to PyTorch's allocator, every call would write the block the previous
call freed, which stays in L2 where a shape's working set is near its size (4096 x 1536 bf16:
torch.compile's rms 10.64 us with the ring, 8.75 us without; benchmarks/RESULTS.md, fifteenth
session). A device-to-device copy of the same bytes (Tensor.copy_) is timed the same way in the
same run. Output: Google Benchmark's JSON
format, with the same counters (bytes_per_second, copy_bytes_per_second, share_of_copy,
us_per_call, rows, hidden) and names "<peer>/<variant>/<dtype>/<regime>/rows:R/hidden:H".
"""

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import sys
import time
import traceback

import torch
import torch.nn.functional as F

EPS = 1e-6
DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}
L2_ROTATION_BYTES = 256 << 20


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def median_seconds_per_call(fn, reps, sets, warmup=2, timed=7, ring=False):
    """Captures reps calls fn(i % sets) into a CUDA graph and times replays with events.

    ring=True keeps each call's outputs alive until the call `sets` later replaces them, so the
    outputs rotate over `sets` (+1) buffers as normgraph's benchmark's do; otherwise PyTorch's
    allocator hands every call the block the previous call's outputs just freed (one buffer)."""
    kept = [None] * sets
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for i in range(min(3, reps)):  # warm-up outside the graph (allocator, autotuning)
            fn(i % sets)
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(reps):
            out = fn(i % sets)
            if ring:
                kept[i % sets] = out
            del out
    for _ in range(warmup):
        graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(timed):
        begin = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        begin.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end) * 1e-3 / reps)
    del graph, kept
    return statistics.median(times)


def launch_seconds_per_call(fn, reps, sets):
    """Back-to-back calls without a graph (host launch overhead included), events around them."""
    for i in range(3):
        fn(i % sets)
    torch.cuda.synchronize()
    begin = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    begin.record()
    for i in range(reps):
        fn(i % sets)
    end.record()
    end.synchronize()
    return begin.elapsed_time(end) * 1e-3 / reps


def import_hf():
    mods = {}
    try:
        from transformers.models.llama.modeling_llama import LlamaRMSNorm
        mods["rms"] = LlamaRMSNorm
    except Exception as e:  # pragma: no cover - depends on the host
        print(f"peers: no LlamaRMSNorm: {e}", file=sys.stderr)
    try:
        from transformers.models.qwen3_5.modeling_qwen3_5 import (Qwen3_5RMSNorm,
                                                                  Qwen3_5RMSNormGated)
        mods["zero_centred"] = Qwen3_5RMSNorm
        mods["gated"] = Qwen3_5RMSNormGated
    except Exception as e:  # pragma: no cover
        print(f"peers: no Qwen3_5 norms: {e}", file=sys.stderr)
    return mods


# The expressions transformers' modules run (the torch_eager / torch_compile peers).
def expr_rms(x, w):
    return F.rms_norm(x, (x.shape[-1],), w, EPS)


def expr_zero_centred(x, w):
    xf = x.float()
    out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)
    return (out * (1.0 + w.float())).type_as(x)


def expr_gated(x, w, gate):
    xf = x.float()
    h = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype)
    h = w * h
    return (h.float() * F.silu(gate.float())).to(x.dtype)


def expr_fused_add(x, residual, w):
    residual = x + residual
    return expr_zero_centred(residual, w), residual


class Bench:
    def __init__(self, args):
        self.args = args
        self.results = []
        self.deadline = time.time() + args.budget_s
        self.skipped = []
        self.hf = import_hf()

    def over_budget(self):
        return time.time() > self.deadline

    def add(self, name, seconds, counters, label=""):
        entry = {
            "name": name,
            "run_name": name,
            "run_type": "iteration",
            "repetitions": 1,
            "repetition_index": 0,
            "threads": 1,
            "iterations": 1,
            "real_time": seconds * 1e6,
            "cpu_time": seconds * 1e6,
            "time_unit": "us",
        }
        if label:
            entry["label"] = label
        entry.update(counters)
        self.results.append(entry)
        print(f"{name:70s} {seconds * 1e6:10.2f} us  "
              + " ".join(f"{k}={v:.4g}" for k, v in counters.items()
                         if k in ("share_of_copy", "us_per_step", "us_per_node")),
              flush=True)

    # --- single norms -----------------------------------------------------------------------

    def norm(self, peer, variant, dtype_name, regime, rows, cols):
        dtype = DTYPES[dtype_name]
        elem = torch.finfo(dtype).bits // 8
        tensor_bytes = rows * cols * elem
        residual = variant == "fused_add"
        gated = variant == "gated"
        operands = 2 + residual + gated
        set_bytes = tensor_bytes * operands
        sets = max(1, min(256, L2_ROTATION_BYTES // set_bytes + 1))
        sets = max(1, min(sets, int(20e9 // max(set_bytes, 1))))
        dev = "cuda"
        gen = torch.Generator(device=dev).manual_seed(rows * 131 + cols)
        xs = [torch.randn(rows, cols, device=dev, dtype=dtype, generator=gen) for _ in range(sets)]
        res = ([torch.randn(rows, cols, device=dev, dtype=dtype, generator=gen)
                for _ in range(sets)] if residual else None)
        gates = ([3 * torch.randn(rows, cols, device=dev, dtype=dtype, generator=gen)
                  for _ in range(sets)] if gated else None)
        w_dtype = dtype
        if variant in ("zero_centred", "fused_add"):
            w = 0.1 * torch.randn(cols, device=dev, dtype=w_dtype, generator=gen)
        else:
            w = 1 + 0.1 * torch.randn(cols, device=dev, dtype=w_dtype, generator=gen)
        weight_bytes = cols * elem
        bytes_moved = tensor_bytes * (2 + 2 * residual + gated) + weight_bytes

        fn = None
        if peer == "hf_eager":
            cls = self.hf.get("zero_centred" if variant == "fused_add" else variant)
            if cls is None:
                return
            module = cls(cols, eps=EPS).to(dev).to(dtype)
            with torch.no_grad():
                module.weight.copy_(w)
            if variant == "gated":
                fn = lambda i: module(xs[i], gates[i])
            elif variant == "fused_add":
                def fn(i):
                    r = xs[i] + res[i]
                    return module(r), r
            else:
                fn = lambda i: module(xs[i])
        else:
            exprs = {"rms": expr_rms, "zero_centred": expr_zero_centred, "gated": expr_gated,
                     "fused_add": expr_fused_add}
            expr = exprs[variant]
            if peer == "torch_compile":
                torch._dynamo.reset()
                expr = torch.compile(expr, dynamic=False, fullgraph=True)
            if variant == "gated":
                fn = lambda i: expr(xs[i], w, gates[i])
            elif variant == "fused_add":
                fn = lambda i: expr(xs[i], res[i], w)
            else:
                fn = lambda i: expr(xs[i], w)
        estimate = bytes_moved / 3e12 + 5e-6
        reps = int(max(8, min(1024, 2e-3 / estimate)))
        t_compile = time.time()
        outputs = self.args.outputs
        with torch.no_grad():
            seconds = median_seconds_per_call(fn, reps, sets, ring=outputs != "reuse")
            reused = (median_seconds_per_call(fn, reps, sets, ring=False)
                      if outputs == "both" else None)
            launch = (launch_seconds_per_call(fn, 50, sets) if regime == "decode" else None)
        compile_s = time.time() - t_compile
        # The ceiling: a copy of the same bytes (half read, half written).
        copy_elems = max(1, bytes_moved // 2 // 2)
        csets = max(1, min(sets, int(20e9 // max(copy_elems * 4, 1))))
        src = [torch.randn(copy_elems, device=dev, dtype=torch.bfloat16) for _ in range(csets)]
        dst = [torch.empty_like(s) for s in src]
        copy_s = median_seconds_per_call(lambda i: dst[i].copy_(src[i]), reps, csets)
        copy_bw = 2 * copy_elems * 2 / copy_s
        counters = {
            "bytes_per_second": bytes_moved / seconds,
            "copy_bytes_per_second": copy_bw,
            "share_of_copy": bytes_moved / seconds / copy_bw,
            "us_per_call": seconds * 1e6,
            "rows": float(rows),
            "hidden": float(cols),
            "sets": float(sets),
        }
        if launch is not None:
            counters["us_per_call_launched"] = launch * 1e6
        if peer == "torch_compile":
            counters["compile_and_time_s"] = compile_s
        name = f"{variant}/{dtype_name}/{regime}/rows:{rows}/hidden:{cols}"
        self.add(f"{peer}/{name}", seconds, counters)
        if reused is not None:  # a peer name report.py does not read: for comparison only
            self.add(f"{peer}_outputs_reused/{name}", reused, dict(
                counters, bytes_per_second=bytes_moved / reused, us_per_call=reused * 1e6,
                share_of_copy=bytes_moved / reused / copy_bw))
        del xs, res, gates, src, dst
        torch.cuda.empty_cache()

    # --- the 256-norm decode stack -------------------------------------------------------------

    def decode_stack(self, batch, nodes=256, hidden=4096):
        dev = "cuda"
        gen = torch.Generator(device=dev).manual_seed(batch)
        ws = [1 + 0.1 * torch.randn(hidden, device=dev, dtype=torch.bfloat16, generator=gen)
              for _ in range(nodes)]
        x = torch.randn(batch, hidden, device=dev, dtype=torch.bfloat16, generator=gen)

        def step():
            h = x
            for w in ws:
                h = F.rms_norm(h, (hidden,), w, EPS)
            return h

        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        for _ in range(20):
            graph.replay()
        torch.cuda.synchronize()
        steps = 100
        begin = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        begin.record()
        for _ in range(steps):
            graph.replay()
        end.record()
        end.synchronize()
        seconds = begin.elapsed_time(end) * 1e-3 / steps
        eager = launch_seconds_per_call(lambda i: step(), 10, 1)
        self.add(f"torch_graph/decode_stack/bf16/batch:{batch}", seconds, {
            "us_per_step": seconds * 1e6,
            "us_per_node": seconds * 1e6 / nodes,
            "eager_us_per_step": eager * 1e6,
            "nodes": float(nodes),
            "batch": float(batch),
        })
        del graph

    def run(self):
        a = self.args
        decode = [(r, c) for r in (1, 8, 64) for c in (2048, 4096, 8192)]
        prefill = [(r, c) for r in (1024, 4096, 32768) for c in (1536, 2048, 4096, 8192, 16384)]
        # Most telling first: the budget may stop the list early.
        compile_shapes = [("prefill", 4096, 4096), ("prefill", 32768, 4096),
                          ("prefill", 4096, 16384), ("prefill", 32768, 16384),
                          ("prefill", 4096, 1536), ("prefill", 32768, 1536),
                          ("decode", 1, 4096), ("decode", 64, 4096)]
        if a.quick:
            decode, prefill = decode[:2], prefill[:2]
            compile_shapes = compile_shapes[:2]
        if a.prefill_shapes:
            prefill = [tuple(int(v) for v in s.split("x")) for s in a.prefill_shapes.split(",")]
            decode = []
            compile_shapes = [("prefill", r, c) for r, c in prefill]
        else:
            for batch in (1, 2, 4, 8, 16, 32, 64):
                self.guarded(self.decode_stack, batch)
        if a.stack_only:
            return
        variants = a.variants.split(",")
        peers = a.peers.split(",")
        eager = [p for p in ("torch_eager", "hf_eager") if p in peers]
        for variant in variants:
            for regime, shapes in (("decode", decode), ("prefill", prefill)):
                for rows, cols in shapes:
                    for peer in eager:
                        self.guarded(self.norm, peer, variant, "bf16", regime, rows, cols)
        for dtype_name in ("f16", "f32") if "rms" in variants and "torch_eager" in peers else ():
            for rows, cols in prefill:
                self.guarded(self.norm, "torch_eager", "rms", dtype_name, "prefill", rows, cols)
        torch._dynamo.config.recompile_limit = 1024
        torch._dynamo.config.cache_size_limit = 1024
        for regime, rows, cols in compile_shapes if "torch_compile" in peers else ():
            for variant in variants:
                if self.over_budget():
                    self.skipped.append(f"torch_compile/{variant}/{regime}/{rows}x{cols}")
                    continue
                self.guarded(self.norm, "torch_compile", variant, "bf16", regime, rows, cols)

    def guarded(self, fn, *args):
        try:
            fn(*args)
        except Exception:  # record and go on: one peer's failure must not lose the rest
            msg = traceback.format_exc(limit=3)
            print(f"peers: {fn.__name__}{args} failed:\n{msg}", file=sys.stderr, flush=True)
            self.results.append({"name": f"error/{fn.__name__}/" + "/".join(map(str, args)),
                                 "run_name": "error", "run_type": "iteration", "iterations": 0,
                                 "real_time": 0, "cpu_time": 0, "time_unit": "us",
                                 "error_occurred": True, "error_message": msg[-500:]})


VARIANTS = ("rms", "zero_centred", "gated", "fused_add")
PEERS = ("torch_eager", "hf_eager", "torch_compile")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON output (Google Benchmark's format)")
    parser.add_argument("--budget-s", type=float, default=240.0,
                        help="stop compiling new torch.compile shapes after this many seconds")
    parser.add_argument("--quick", action="store_true", help="a few shapes only (smoke run)")
    parser.add_argument("--stack-only", action="store_true",
                        help="only PyTorch's graph of the 256-norm decode stack (seconds)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated variants to time (default: all; the decode stack "
                             "is always timed)")
    parser.add_argument("--outputs", choices=("ring", "reuse", "both"), default="ring",
                        help="ring (default): each call's outputs stay alive for `sets` calls, so "
                             "they rotate over as many buffers as normgraph's benchmark writes; "
                             "reuse: every call writes the block the previous one freed (it can "
                             "stay in L2); both: time both, the second as <peer>_outputs_reused")
    parser.add_argument("--prefill-shapes", default="",
                        help="comma-separated RxC prefill shapes to time instead of the default "
                             "lists (decode shapes and the decode stack are then skipped)")
    parser.add_argument("--peers", default="torch_eager,hf_eager,torch_compile",
                        help="comma-separated single-norm peers to time")
    args = parser.parse_args()
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    unknown = set(args.peers.split(",")) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; known: {', '.join(PEERS)}")
    if not torch.cuda.is_available():
        sys.exit("peers: no CUDA device")
    import transformers
    prop = torch.cuda.get_device_properties(0)
    bench = Bench(args)
    start = time.time()
    bench.run()
    context = {
        "date": now_iso(),
        "host_name": socket.gethostname(),
        "executable": "tools/bench/peers.py " + " ".join(sys.argv[1:]),
        "device": f"{prop.name}, {prop.multi_processor_count} SMs",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "suite": "peers",
        "seconds": round(time.time() - start, 1),
        "skipped_over_budget": bench.skipped,
        "library_build_type": "release",
    }
    with open(args.out, "w") as f:
        json.dump({"context": context, "benchmarks": bench.results}, f, indent=1)
    print(f"peers: {len(bench.results)} results in {context['seconds']} s -> {args.out}; "
          f"{len(bench.skipped)} compiled shapes skipped over budget")


if __name__ == "__main__":
    main()
