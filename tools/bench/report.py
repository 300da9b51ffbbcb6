#!/usr/bin/env python3
"""Turns benchmark JSON (normgraph's Google Benchmark suites and tools/bench/peers.py) into the
generated part of benchmarks/RESULTS.md and its PNG charts.

    python3 tools/bench/report.py --results DIR [--cpu DIR] [--md benchmarks/RESULTS.md]
        [--figures benchmarks/figures] [--command "how the JSON was made"]

DIR holds cuda_norm_benchmark.json, cuda_graph_benchmark.json and peers.json (what
tools/bench/gpu_session.sh writes); --cpu a folder with cpu_norm_benchmark.json and
graph_check_benchmark.json. The part of the Markdown file between the markers
`<!-- report.py begin -->` and `<!-- report.py end -->` is replaced (appended if absent);
everything else in the file is kept. Every chart carries the command, the date and the machine.
Needs matplotlib (Debian: python3-matplotlib, installed by tools/setup.sh).
"""

import argparse
import json
import math
import os
import re
import statistics
import sys

BEGIN = "<!-- report.py begin -->"
END = "<!-- report.py end -->"

# Targets of issue #12 (reported, not asserted).
TARGET_SHARE_OF_COPY = 0.95
TARGET_STACK_MS = 0.30
TARGET_STACK_SPEEDUP = 5.0
TARGET_CHECK_SHARE = 0.005
TARGET_REBIND_RATIO = 50.0

VARIANT_TITLES = {
    "rms": "RMSNorm (Llama, HF order)",
    "rms_engine": "RMSNorm (engine order)",
    "zero_centred": "zero-centred (Gemma / Qwen3.5)",
    "gated": "gated (Qwen3.5 linear attention)",
    "fused_add": "fused residual add + zero-centred",
}
PEERS = ["torch_eager", "hf_eager", "torch_compile"]


def load(path):
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


# The hidden size of the decode stack the targets name (1 x 4096).
DECODE_HIDDEN = 4096


def parse_name(name):
    """'BM_Norm/rms/bf16/prefill/rows:4096/hidden:4096/iterations:1/manual_time' ->
    (['BM_Norm', 'rms', 'bf16', 'prefill'], {'rows': 4096, 'hidden': 4096, ...})."""
    parts, keys = [], {}
    for piece in name.split("/"):
        if ":" in piece:
            k, v = piece.split(":", 1)
            try:
                keys[k] = int(v)
            except ValueError:
                keys[k] = v
        elif piece != "manual_time":
            parts.append(piece)
    return parts, keys


def ok_entries(report):
    if not report:
        return []
    return [b for b in report.get("benchmarks", []) if not b.get("error_occurred")
            and b.get("run_type", "iteration") == "iteration"]


def context_line(report, fallback_command):
    if not report:
        return ""
    c = report.get("context", {})
    device = c.get("device", "")
    exe = c.get("executable", "")
    cmd = fallback_command or exe
    return f"{cmd} | {c.get('date', '')} | {device or c.get('host_name', '')}"


def fmt(v, digits=3):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def pct(v):
    if v is None:
        return "-"
    if abs(v) < 0.01:
        return f"{100 * v:.2g}%"
    return f"{100 * v:.1f}%"


def load_with_overlay(results, name):
    """NAME.json, with the entries of NAME_after.json (a later run of part of the suite, e.g.
    after a kernel change) replacing those of the same name; replaced entries get
    "overlaid": true."""
    base = load(os.path.join(results, name + ".json"))
    after = load(os.path.join(results, name + "_after.json"))
    if not base or not after:
        return base or after
    newer = {b["name"]: dict(b, overlaid=True) for b in after.get("benchmarks", [])}
    merged = [newer.pop(b["name"], b) for b in base.get("benchmarks", [])]
    merged.extend(newer.values())
    return {"context": base.get("context", {}), "after_context": after.get("context", {}),
            "benchmarks": merged}


def mark(e):
    return "*" if e and e.get("overlaid") else ""


class Data:
    def __init__(self, results, cpu):
        self.norm = load_with_overlay(results, "cuda_norm_benchmark")
        self.graph = load_with_overlay(results, "cuda_graph_benchmark")
        # Optional: the decode stacks again with NORMGRAPH_CUDA_SPREAD=0 (same call).
        self.graph_spread_off = load(
            os.path.join(results, "cuda_graph_benchmark_spread0.json"))
        self.peers = load(os.path.join(results, "peers.json"))
        self.cpu_norm = load(os.path.join(cpu, "cpu_norm_benchmark.json")) if cpu else None
        self.cpu_graph = load(os.path.join(cpu, "graph_check_benchmark.json")) if cpu else None
        # (impl, variant, dtype, regime, rows, hidden) -> entry
        self.kernels = {}
        for b in ok_entries(self.norm):
            parts, keys = parse_name(b["name"])
            if parts[0] != "BM_Norm":
                continue
            self.kernels[("normgraph", parts[1], parts[2], parts[3], keys["rows"],
                          keys["hidden"])] = b
        for b in ok_entries(self.peers):
            parts, keys = parse_name(b["name"])
            if parts[0] in PEERS:
                self.kernels[(parts[0], parts[1], parts[2], parts[3], keys["rows"],
                              keys["hidden"])] = b
        copies = [b["copy_bytes_per_second"] for b in ok_entries(self.norm)
                  if "copy_bytes_per_second" in b]
        self.peak_copy = max(copies) if copies else None
        self.layouts = []
        for b in ok_entries(self.norm):
            parts, keys = parse_name(b["name"])
            if parts[0] == "BM_Layout":
                self.layouts.append((parts, keys, b))

    def kernel(self, impl, variant, dtype, regime, rows, hidden):
        return self.kernels.get((impl, variant, dtype, regime, rows, hidden))

    def shapes(self, variant, dtype, regime):
        return sorted({(k[4], k[5]) for k in self.kernels
                       if k[0] == "normgraph" and k[1] == variant and k[2] == dtype
                       and k[3] == regime})

    def graph_entries(self, prefix, hidden=DECODE_HIDDEN):
        """(keys, entry) of the graph benchmark's `prefix` entries; decode stacks of `hidden`
        only (runs before the hidden argument existed have 4096), None for every size."""
        out = []
        for b in ok_entries(self.graph):
            parts, keys = parse_name(b["name"])
            if parts[0] == prefix and (
                    hidden is None or keys.get("hidden", DECODE_HIDDEN) == hidden):
                out.append((keys, b))
        return out

    def plan_replays(self):
        """The decode-stack replays with the plan's own layout (no forced K or cluster)."""
        return [(k, b) for k, b in self.graph_entries("BM_DecodeStackReplay")
                if k.get("k", 0) == 0 and not k.get("copy", 0) and not k.get("cluster", 0)]

    def unsplit_replays(self):
        """The plan's layout without rows split over clusters (cluster:1), by (batch, pdl)."""
        return {(k["batch"], k["pdl"]): b
                for k, b in self.graph_entries("BM_DecodeStackReplay")
                if k.get("k", 0) == 0 and not k.get("copy", 0) and k.get("cluster", 0) == 1}

    def copy_floor(self):
        """The same graph of copy kernels, by (batch, pdl): the floor of a node."""
        return {(k["batch"], k["pdl"]): b
                for k, b in self.graph_entries("BM_DecodeStackReplay") if k.get("copy", 0)}

    def peer_stack(self):
        out = {}
        for b in ok_entries(self.peers):
            parts, keys = parse_name(b["name"])
            if parts[0] == "torch_graph" and "batch" in keys:
                out[keys["batch"]] = b
        return out


def best_peer(data, variant, dtype, regime, rows, hidden):
    best = None
    for peer in PEERS:
        e = data.kernel(peer, variant, dtype, regime, rows, hidden)
        if e and (best is None or e["us_per_call"] < best[1]["us_per_call"]):
            best = (peer, e)
    return best


# --- tables ------------------------------------------------------------------------------------


def kernel_tables(data, lines):
    lines.append("### Kernels against the copy ceiling and the peers (bf16)\n")
    lines.append(
        "Share of copy = the kernel's bytes per second over a device-to-device copy's, both "
        "counting bytes read + written, timed in the same run. Peers: the fastest of PyTorch "
        "eager (the expressions transformers runs; F.rms_norm for rms), transformers' module, "
        "and torch.compile of the expression (compiled per shape); `ours/best` > 1 means "
        "normgraph is faster. `of peak copy`: against the fastest copy measured anywhere in the "
        f"run ({fmt(data.peak_copy / 1e12 if data.peak_copy else None)} TB/s). `*`: from the "
        "later partial run (`*_after.json`), the rest from the full run.\n")
    for variant in VARIANT_TITLES:
        rows_out = []
        for regime in ("prefill", "decode"):
            for rows, hidden in data.shapes(variant, "bf16", regime):
                e = data.kernel("normgraph", variant, "bf16", regime, rows, hidden)
                bp = best_peer(data, variant, "bf16", regime, rows, hidden)
                peer_cells = []
                for peer in PEERS:
                    p = data.kernel(peer, variant, "bf16", regime, rows, hidden)
                    peer_cells.append(pct(p["share_of_copy"]) if p else "-")
                ratio = (bp[1]["us_per_call"] / e["us_per_call"]) if bp else None
                peak = e["bytes_per_second"] / data.peak_copy if data.peak_copy else None
                rows_out.append(
                    f"| {regime} | {rows} | {hidden} | {fmt(e['us_per_call'])}{mark(e)} | "
                    f"{fmt(e['bytes_per_second'] / 1e12)} | {pct(e['share_of_copy'])} | "
                    f"{pct(peak)} | "
                    + " | ".join(peer_cells)
                    + f" | {bp[0] if bp else '-'} | {fmt(ratio)} | {e.get('label', '')} |")
        if not rows_out:
            continue
        lines.append(f"#### {VARIANT_TITLES[variant]}\n")
        lines.append("| regime | rows | hidden | us/call | TB/s | share of copy | of peak copy | "
                     "torch eager | HF eager | torch.compile | best peer | ours/best | launch |")
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
                     "| ---: | --- |")
        lines.extend(rows_out)
        lines.append("")


def dtype_table(data, lines):
    lines.append("### Other dtypes (prefill, share of copy)\n")
    lines.append("| variant | dtype | rows | hidden | us/call | share of copy | torch eager |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for dtype in ("f16", "f32"):
        for variant in VARIANT_TITLES:
            for rows, hidden in data.shapes(variant, dtype, "prefill"):
                if rows != 4096:
                    continue
                e = data.kernel("normgraph", variant, dtype, "prefill", rows, hidden)
                p = data.kernel("torch_eager", variant, dtype, "prefill", rows, hidden)
                lines.append(f"| {variant} | {dtype} | {rows} | {hidden} | "
                             f"{fmt(e['us_per_call'])}{mark(e)} | {pct(e['share_of_copy'])} | "
                             f"{pct(p['share_of_copy']) if p else '-'} |")
    lines.append("")


def per_head_table(data, lines):
    shapes = []
    for variant in ("rms", "zero_centred", "gated"):
        for dtype in ("bf16",):
            for rows, hidden in data.shapes(variant, dtype, "per_head"):
                shapes.append((variant, dtype, rows, hidden))
    if not shapes:
        return
    lines.append("### Per-head norms (q/k norm, gated value heads: rows = tokens x 32 heads)\n")
    lines.append("| variant | rows | head_dim | us/call | share of copy | launch |")
    lines.append("| --- | ---: | ---: | ---: | ---: | --- |")
    for variant, dtype, rows, hidden in shapes:
        e = data.kernel("normgraph", variant, dtype, "per_head", rows, hidden)
        lines.append(f"| {variant} | {rows} | {hidden} | {fmt(e['us_per_call'])} | "
                     f"{pct(e['share_of_copy'])} | {e.get('label', '')} |")
    lines.append("")


def layout_table(data, lines):
    if not data.layouts:
        return
    lines.append("### Launch layouts (forced K chunks per thread x block)\n")
    lines.append("The automatic plan (kernels/cuda/row_layout.h) against the best forced layout "
                 "on each shape, in TB/s (the copy ceiling of each entry varies run to run).\n")
    lines.append("| variant | dtype | rows | hidden | automatic: TB/s (launch) | best forced: TB/s "
                 "(launch) |")
    lines.append("| --- | --- | ---: | ---: | --- | --- |")
    groups = {}
    for parts, keys, b in data.layouts:
        groups.setdefault((parts[1], parts[2], keys["rows"], keys["hidden"]), []).append(b)
    for (variant, dtype, rows, hidden), entries in sorted(groups.items()):
        best = max(entries, key=lambda b: b["bytes_per_second"])
        regime = "per_head" if hidden <= 256 else "prefill"
        auto = data.kernel("normgraph", variant, dtype, regime, rows, hidden)
        auto_cell = (f"{fmt(auto['bytes_per_second'] / 1e12)} ({auto.get('label', '')})"
                     if auto else "-")
        lines.append(f"| {variant} | {dtype} | {rows} | {hidden} | {auto_cell} | "
                     f"{fmt(best['bytes_per_second'] / 1e12)} ({best.get('label', '')}) |")
    lines.append("")


def stack_layout_table(data, lines):
    forced = [(k, b) for k, b in data.graph_entries("BM_DecodeStackReplay")
              if k.get("k", 0) and not k.get("copy", 0)]
    if not forced:
        return
    plan = {(k["batch"], k["pdl"]): b for k, b in data.plan_replays()}
    unsplit = data.unsplit_replays()
    floor = data.copy_floor()
    lines.append("### The decode stack with forced layouts (K chunks per thread)\n")
    lines.append("Plan without clusters: the plan's layout with no row split over a "
                 "thread-block cluster; K = 1, 2, 4: forced, no clusters either. "
                 "Copy floor: the same graph with each node a copy of its input "
                 "(absent from runs before the floor benchmark existed).\n")
    lines.append("| batch | PDL | plan us/step | plan without clusters | K=1 | K=2 | K=4 | "
                 "copy floor us/step |")
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    cells = {key: {} for key in unsplit}
    for k, b in forced:
        cells.setdefault((k["batch"], k["pdl"]), {})[k["k"]] = b
    for (batch, pdl), by_k in sorted(cells.items()):
        p = plan.get((batch, pdl))
        u = unsplit.get((batch, pdl))
        lines.append(f"| {batch} | {'on' if pdl else 'off'} | "
                     f"{fmt(p['us_per_step']) if p else '-'} | "
                     f"{fmt(u['us_per_step']) if u else '-'} | "
                     + " | ".join(fmt(by_k[k]["us_per_step"]) if k in by_k else "-"
                                  for k in (1, 2, 4))
                     + f" | {fmt(floor[(batch, pdl)]['us_per_step']) if (batch, pdl) in floor else '-'} |")
    lines.append("")


def stack_hidden_table(data, lines):
    """The decode stack at hidden sizes other than 4096: plan, without clusters, copy floor."""
    cells = {}
    for k, b in data.graph_entries("BM_DecodeStackReplay", hidden=None):
        hidden = k.get("hidden", DECODE_HIDDEN)
        if hidden == DECODE_HIDDEN or k.get("k", 0) or not k.get("pdl", 0):
            continue
        column = "copy" if k.get("copy", 0) else ("unsplit" if k.get("cluster", 0) else "plan")
        cells.setdefault((hidden, k["batch"]), {})[column] = b
    if not cells:
        return
    lines.append("### The decode stack at other hidden sizes (bf16, PDL)\n")
    lines.append("The same 256-norm chain over [batch, hidden]; without clusters: no row split "
                 "over a thread-block cluster; copy floor: each node a copy of its input.\n")
    lines.append("| hidden | batch | plan us/step | us/node | without clusters us/step | "
                 "split gain | copy floor us/step |")
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (hidden, batch), c in sorted(cells.items()):
        p, u, f = c.get("plan"), c.get("unsplit"), c.get("copy")
        gain = f"{u['us_per_step'] / p['us_per_step']:.2f}x" if p and u else "-"
        lines.append(f"| {hidden} | {batch} | {fmt(p['us_per_step']) if p else '-'} | "
                     f"{fmt(p['us_per_node']) if p else '-'} | "
                     f"{fmt(u['us_per_step']) if u else '-'} | {gain} | "
                     f"{fmt(f['us_per_step']) if f else '-'} |")
    lines.append("")


def gated_stack_table(data, lines):
    """The 256-node gated decode chain (BM_GatedDecodeStackReplay), with the wide gated
    kernels where the plan takes them and without."""
    cells = {}
    for k, b in data.graph_entries("BM_GatedDecodeStackReplay", hidden=None):
        cells.setdefault((k["hidden"], k["rows"]), {})[k.get("wide", 1)] = b
    if not cells:
        return
    lines.append("### The gated decode chain (256 chained gated norms, bf16 [rows, hidden])\n")
    lines.append("Qwen3.5's linear-attention norm per value head (hidden 128, rows = tokens x 32 "
                 "heads) and over whole rows; PDL, the plan's layout, the gate one more input "
                 "of the step. Plan: the wide gated kernels where the plan takes them (the "
                 "default); without: never.\n")
    lines.append("| hidden | rows | plan us/step | us/node | without wide us/step | us/node | "
                 "gain |")
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (hidden, rows), c in sorted(cells.items()):
        w, n = c.get(1), c.get(0)
        gain = f"{n['us_per_step'] / w['us_per_step']:.2f}x" if w and n else "-"
        lines.append(f"| {hidden} | {rows} | {fmt(w['us_per_step']) if w else '-'} | "
                     f"{fmt(w['us_per_node']) if w else '-'} | "
                     f"{fmt(n['us_per_step']) if n else '-'} | "
                     f"{fmt(n['us_per_node']) if n else '-'} | {gain} |")
    lines.append("")


def spread_table(data, lines):
    """The decode stacks with spread launches (the default) and without
    (cuda_graph_benchmark_spread0.json, the same binary with NORMGRAPH_CUDA_SPREAD=0)."""
    off = {b["name"]: b for b in ok_entries(data.graph_spread_off)}
    rows = []
    for b in ok_entries(data.graph):
        parts, keys = parse_name(b["name"])
        o = off.get(b["name"])
        if o is None:
            continue
        if parts[0] == "BM_DecodeStackReplay" and keys.get("pdl") == 1 and \
                keys.get("k", 0) == 0 and not keys.get("copy", 0) and \
                not keys.get("cluster", 0):
            what = (0, "rms", keys.get("hidden", DECODE_HIDDEN), keys["batch"])
        elif parts[0] == "BM_GatedDecodeStackReplay" and keys.get("wide", 1) == 1:
            what = (1, "gated", keys["hidden"], keys["rows"])
        else:
            continue
        rows.append((what, b, o))
    if not rows:
        return
    lines.append("### Spread decode launches on and off (256-node stacks, bf16, PDL)\n")
    lines.append("Spread: K = 1 launches of 17 row groups up to one per SM get programmatic "
                 "dependent launch and one CTA an SM (kernels/cuda/kernels.cu, SpreadLaunch); "
                 "off: the same binary with NORMGRAPH_CUDA_SPREAD=0 in the same call (gated "
                 "launches then take the wide form where it applies).\n")
    lines.append("| norm | hidden | rows | spread us/step | off us/step | gain |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for (_, norm, hidden, n), b, o in sorted(rows, key=lambda r: r[0]):
        gain = o["us_per_step"] / b["us_per_step"]
        lines.append(f"| {norm} | {hidden} | {n} | {fmt(b['us_per_step'])} | "
                     f"{fmt(o['us_per_step'])} | {gain:.2f}x |")
    lines.append("")


def stack_table(data, lines):
    replays = data.plan_replays()
    eager = {k["batch"]: b for k, b in data.graph_entries("BM_DecodeStackEager")}
    peers = data.peer_stack()
    if not replays:
        return
    lines.append("### The 256-norm decode stack (256 chained RMSNorm, bf16 [batch, 4096])\n")
    lines.append("Per step on the device timeline, 100 checked replays back to back (check + "
                 "cudaGraphLaunch on the host each time); PDL = programmatic dependent launch.\n")
    lines.append("| batch | normgraph PDL us/step | us/node | normgraph no PDL us/step | "
                 "host launch us | check us | PyTorch graph us/step | speedup | "
                 "normgraph eager us/step |")
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    by_batch = {}
    for keys, b in replays:
        by_batch.setdefault(keys["batch"], {})[keys["pdl"]] = b
    for batch in sorted(by_batch):
        on = by_batch[batch].get(1)
        off = by_batch[batch].get(0)
        p = peers.get(batch)
        best = min([x for x in (on, off) if x], key=lambda x: x["us_per_step"])
        speedup = p["us_per_step"] / best["us_per_step"] if p else None
        e = eager.get(batch)
        lines.append(
            f"| {batch} | {fmt(on['us_per_step']) if on else '-'}{mark(on)} | "
            f"{fmt(best['us_per_node'])} | {fmt(off['us_per_step']) if off else '-'}{mark(off)} | "
            f"{fmt(best['host_launch_us'])} | {fmt(best['check_us'], 2)} | "
            f"{fmt(p['us_per_step']) if p else '-'} | {fmt(speedup)}x | "
            f"{fmt(e['us_per_step']) if e else '-'} |")
    lines.append("")


def check_table(data, lines):
    entries = data.graph_entries("BM_Check")
    if not entries:
        return
    lines.append("### The identity check against the replay\n")
    lines.append("Check alone (host CPU), per call; share = check / the graph's replay per step.\n")
    lines.append("| nodes | tracked | replay us | nothing moved (fast path) ns | share | "
                 "full compare ns | share | one slot moved ns | share |")
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    by_nodes = {}
    for keys, b in entries:
        by_nodes.setdefault(keys["nodes"], {})[keys["mode"]] = b
    for nodes in sorted(by_nodes):
        m = by_nodes[nodes]
        any_b = next(iter(m.values()))
        replay_ns = any_b["replay_us"] * 1e3
        cells = []
        for mode in (0, 1, 2):
            b = m.get(mode)
            if b:
                ns = b["real_time"] * unit_ns(b)
                cells += [fmt(ns), pct(ns / replay_ns)]
            else:
                cells += ["-", "-"]
        lines.append(f"| {nodes} | {fmt(any_b['tracked'])} | {fmt(any_b['replay_us'])} | "
                     + " | ".join(cells) + " |")
    lines.append("")


def unit_ns(b):
    return {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]


def repair_table(data, lines):
    rebind = {k["one_module"]: b for k, b in data.graph_entries("BM_RepairByRebind")}
    recap = {k["one_module"]: b for k, b in data.graph_entries("BM_RepairByRecapture")}
    if not rebind:
        return
    lines.append("### Repairs (256-node graph, CUDA)\n")
    lines.append("| moved | rebind us | recapture + instantiate us | recapture / rebind |")
    lines.append("| --- | ---: | ---: | ---: |")
    for one, title in ((1, "one module's weight"), (0, "every module's weight")):
        a, b = rebind.get(one), recap.get(one)
        if not a:
            continue
        ua = a["real_time"] * unit_ns(a) / 1e3
        ub = b["real_time"] * unit_ns(b) / 1e3 if b else None
        lines.append(f"| {title} | {fmt(ua)} | {fmt(ub)} | "
                     f"{fmt(ub / ua) if ub else '-'}x |")
    lines.append("")


def weights_table(data, lines):
    up = {k["stack"]: b for k, b in data.graph_entries("BM_WeightUpdate")}
    rd = {k["stack"]: b for k, b in data.graph_entries("BM_FileRead")}
    if not up:
        return
    lines.append("### Weight updates (safetensors file -> in place on the device)\n")
    lines.append("| stack | file MB | load in place GB/s | plain read GB/s | load / read |")
    lines.append("| --- | ---: | ---: | ---: | ---: |")
    for stack in sorted(up):
        a, b = up[stack], rd.get(stack)
        lines.append(f"| {a.get('label', stack)} | {fmt(a['file_bytes'] / 1e6)} | "
                     f"{fmt(a['bytes_per_second'] / 1e9)} | "
                     f"{fmt(b['bytes_per_second'] / 1e9) if b else '-'} | "
                     f"{pct(a['bytes_per_second'] / b['bytes_per_second']) if b else '-'} |")
    lines.append("")


def cpu_tables(data, lines):
    entries = ok_entries(data.cpu_norm)
    if not entries:
        return
    lines.append("### CPU reference and CPU backend against memcpy (ratios only)\n")
    lines.append("| benchmark | rows | hidden | variant | dtype | share of memcpy |")
    lines.append("| --- | ---: | ---: | --- | --- | ---: |")
    names = {0: "rms", 1: "zero_centred", 2: "gated", 3: "fused_add"}
    dtypes = {0: "bf16", 1: "f16"}
    for b in entries:
        parts, keys = parse_name(b["name"])
        if "share_of_memcpy" not in b:
            continue
        lines.append(f"| {parts[0]} | {keys.get('rows')} | {keys.get('hidden')} | "
                     f"{names.get(keys.get('variant'), '?')} | "
                     f"{dtypes.get(keys.get('dtype'), 'bf16')} | {pct(b['share_of_memcpy'])} |")
    lines.append("")


# --- targets -------------------------------------------------------------------------------------


def targets_table(data, lines):
    lines.append("### Targets (issue #12; reported, not asserted)\n")
    lines.append("| target | measured | met? |")
    lines.append("| --- | --- | --- |")
    # 1. >= 95% of copy for 1k-32k rows x 1536-16384, every variant, bf16.
    shares = []
    behind = []
    for variant in VARIANT_TITLES:
        for rows, hidden in data.shapes(variant, "bf16", "prefill"):
            if 1024 <= rows <= 32768 and 1536 <= hidden <= 16384:
                e = data.kernel("normgraph", variant, "bf16", "prefill", rows, hidden)
                shares.append((e["share_of_copy"], variant, rows, hidden))
                bp = best_peer(data, variant, "bf16", "prefill", rows, hidden)
                if bp and bp[1]["us_per_call"] < e["us_per_call"] * 0.97:
                    behind.append((e["us_per_call"] / bp[1]["us_per_call"], variant, rows,
                                   hidden, bp[0]))
    if shares:
        worst = min(shares)
        best = max(shares)
        below = [s for s in shares if s[0] < TARGET_SHARE_OF_COPY]
        lines.append(
            f"| >= 95% of same-run copy bandwidth, bf16 prefill (1k-32k rows x 1536-16384) | "
            f"median {pct(statistics.median(s[0] for s in shares))}, best {pct(best[0])} "
            f"({best[1]} {best[2]}x{best[3]}), worst {pct(worst[0])} "
            f"({worst[1]} {worst[2]}x{worst[3]}) of the same-shape copy; "
            f"{len(below)} of {len(shares)} shapes below | {'yes' if not below else 'no'} |")
        if data.peak_copy:
            peak = [data.kernel("normgraph", s[1], "bf16", "prefill", s[2], s[3])
                    ["bytes_per_second"] / data.peak_copy for s in shares]
            lines.append(
                f"| (the same against the run's fastest copy, "
                f"{data.peak_copy / 1e12:.2f} TB/s) | median {pct(statistics.median(peak))}, "
                f"best {pct(max(peak))} | no |")
        if behind:
            w = max(behind)
            lines.append(
                f"| never behind the best of PyTorch eager / torch.compile beyond noise (3%) | "
                f"behind on {len(behind)} shapes, worst {fmt(w[0])}x slower ({w[1]} "
                f"{w[2]}x{w[3]} vs {w[4]}) | no |")
        else:
            lines.append("| never behind the best of PyTorch eager / torch.compile beyond noise "
                         "(3%) | not behind on any measured shape | yes |")
    replays = data.plan_replays()
    peers = data.peer_stack()
    b1 = [b for k, b in replays if k["batch"] == 1]
    if b1:
        best = min(b1, key=lambda b: b["us_per_step"])
        ms = best["us_per_step"] / 1e3
        lines.append(f"| 256-norm decode stack at 1x4096 replays in <= 0.30 ms | "
                     f"{ms:.3f} ms ({'PDL' if best['pdl'] else 'no PDL'}) | "
                     f"{'yes' if ms <= TARGET_STACK_MS else 'no'} |")
        if 1 in peers:
            speed = peers[1]["us_per_step"] / best["us_per_step"]
            lines.append(f"| >= 5x faster than PyTorch's graph of the same stack | "
                         f"{speed:.1f}x (PyTorch {peers[1]['us_per_step'] / 1e3:.3f} ms) | "
                         f"{'yes' if speed >= TARGET_STACK_SPEEDUP else 'no'} |")
    checks = data.graph_entries("BM_Check")
    fast256 = [b for k, b in checks if k["nodes"] == 256 and k["mode"] == 0]
    if fast256 and b1:
        ns = fast256[0]["real_time"] * unit_ns(fast256[0])
        share = ns / (min(b["us_per_step"] for b in b1) * 1e3)
        lines.append(f"| check with nothing moved < 0.5% of that replay | {fmt(ns)} ns = "
                     f"{100 * share:.4f}% | {'yes' if share < TARGET_CHECK_SHARE else 'no'} |")
    rebind = {k["one_module"]: b for k, b in data.graph_entries("BM_RepairByRebind")}
    recap = {k["one_module"]: b for k, b in data.graph_entries("BM_RepairByRecapture")}
    if 1 in rebind and 1 in recap:
        r = (recap[1]["real_time"] * unit_ns(recap[1])) / (rebind[1]["real_time"] *
                                                            unit_ns(rebind[1]))
        lines.append(f"| rebind of one module >= 50x cheaper than recapture + instantiate | "
                     f"{r:.0f}x | {'yes' if r >= TARGET_REBIND_RATIO else 'no'} |")
    lines.append("")


# --- charts ----------------------------------------------------------------------------------------


def save_figure(fig, path, stamp, plt, rect):
    """Stamps the figure with `stamp` at its foot, lays it out within `rect` and writes it."""
    fig.text(0.01, 0.005, stamp, fontsize=6, color="0.35", ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def chart_share_of_copy(data, path, stamp, plt):
    variants = [v for v in VARIANT_TITLES if data.shapes(v, "bf16", "prefill")]
    if not variants or not data.peak_copy:
        return False
    ncols = min(3, len(variants))
    nrows = (len(variants) + ncols - 1) // ncols
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows + 0.6),
                             sharey=True, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[len(variants):]:
        ax.axis("off")
    styles = {"normgraph": ("C0", "o", "-"), "torch_eager": ("C1", "s", "--"),
              "hf_eager": ("C2", "^", ":"), "torch_compile": ("C3", "D", "-.")}
    for ax, variant in zip(axes, variants):
        rows_set = sorted({r for r, _ in data.shapes(variant, "bf16", "prefill")})
        for rows in rows_set:
            for impl in ["normgraph"] + PEERS:
                pts = []
                for r, h in data.shapes(variant, "bf16", "prefill"):
                    e = data.kernel(impl, variant, "bf16", "prefill", r, h)
                    if r == rows and e:
                        pts.append((h, e["bytes_per_second"] / data.peak_copy))
                if len(pts) < 1:
                    continue
                c, m, ls = styles[impl]
                alpha = 0.35 + 0.65 * (rows_set.index(rows) + 1) / len(rows_set)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=c, marker=m,
                        linestyle=ls, alpha=alpha, markersize=3,
                        label=f"{impl} {rows} rows")
        ax.axhline(TARGET_SHARE_OF_COPY, color="0.5", linewidth=0.8, linestyle="--")
        ax.set_xscale("log", base=2)
        ax.set_title(VARIANT_TITLES[variant], fontsize=8)
        ax.set_xlabel("hidden size")
        ax.set_ylim(0, 1.1)
        ax.grid(alpha=0.3)
    for row in grid:
        row[0].set_ylabel(f"share of copy bandwidth\n(run's fastest copy, "
                          f"{data.peak_copy / 1e12:.2f} TB/s)")
    handles, labels = axes[0].get_legend_handles_labels()
    if len(variants) < len(axes):
        axes[-1].legend(handles, labels, fontsize=6, loc="center")
    else:
        axes[len(variants) - 1].legend(fontsize=5, loc="lower right")
    fig.suptitle("bf16 norm kernels and peers vs device-to-device copy (prefill shapes; "
                 "line shade: rows)", fontsize=10)
    save_figure(fig, path, stamp, plt, (0, 0.03, 1, 0.96))
    return True


def chart_replay_per_node(data, path, stamp, plt):
    replays = data.plan_replays()
    if not replays:
        return False
    peers = data.peer_stack()
    fig, ax = plt.subplots(figsize=(6, 4))
    for pdl, style in ((1, "o-"), (0, "s--")):
        pts = sorted((k["batch"], b["us_per_node"]) for k, b in replays if k["pdl"] == pdl)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style,
                    label=f"normgraph graph replay ({'PDL' if pdl else 'no PDL'})")
    if peers:
        pts = sorted((b, e["us_per_node"]) for b, e in peers.items())
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "^:", label="PyTorch CUDA graph")
    ax.axhline(TARGET_STACK_MS * 1e3 / 256, color="0.5", linewidth=0.8, linestyle="--",
               label="target at batch 1 (0.30 ms / 256)")
    ax.set_xscale("log", base=2)
    batches = sorted({k["batch"] for k, _ in replays})
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("batch (rows of 4096)")
    ax.set_ylabel("us per node")
    ax.set_title("256-norm decode stack: replay time per node", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path, stamp, plt, (0, 0.05, 1, 1))
    return True


def chart_check_overhead(data, path, stamp, plt):
    entries = data.graph_entries("BM_Check")
    if not entries:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = {0: "nothing moved (fast path)", 1: "full compare", 2: "one slot moved"}
    for mode, style in ((0, "o-"), (1, "s--"), (2, "^:")):
        pts = sorted((k["nodes"], b["real_time"] * unit_ns(b) / (b["replay_us"] * 1e3))
                     for k, b in entries if k["mode"] == mode)
        if pts:
            ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], style, label=labels[mode])
    ax.axhline(100 * TARGET_CHECK_SHARE, color="0.5", linewidth=0.8, linestyle="--",
               label="target 0.5%")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    nodes = sorted({k["nodes"] for k, _ in entries})
    ax.set_xticks(nodes)
    ax.set_xticklabels([str(n) for n in nodes])
    ax.set_xlabel("graph nodes")
    ax.set_ylabel("check time, % of the graph's replay")
    ax.set_title("identity check overhead vs graph size (CUDA)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    save_figure(fig, path, stamp, plt, (0, 0.05, 1, 1))
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", required=True, help="folder with the GPU JSON files")
    parser.add_argument("--cpu", help="folder with the CPU benchmark JSON files")
    parser.add_argument("--md", default="benchmarks/RESULTS.md")
    parser.add_argument("--figures", default="benchmarks/figures")
    parser.add_argument("--command", default="tools/bench/gpu_session.sh",
                        help="the command that produced the JSON (printed on every chart)")
    parser.add_argument("--no-charts", action="store_true")
    args = parser.parse_args()

    data = Data(args.results, args.cpu)
    if not (data.norm or data.graph or data.peers):
        sys.exit(f"report.py: no benchmark JSON in {args.results}")
    src = data.norm or data.graph or data.peers
    stamp = context_line(src, args.command)

    lines = [BEGIN, "", f"Generated by `tools/bench/report.py`: {stamp} (command | date | "
             "machine).", ""]
    if data.peers:
        c = data.peers.get("context", {})
        lines.append(f"Peers: torch {c.get('torch', '?')}, transformers "
                     f"{c.get('transformers', '?')}; compiled shapes skipped over the time "
                     f"budget: {len(c.get('skipped_over_budget', []))}.\n")
    targets_table(data, lines)
    charts = []
    if not args.no_charts:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            sys.exit("report.py: matplotlib is missing (Debian: apt-get install "
                     "python3-matplotlib, or run tools/setup.sh)")
        os.makedirs(args.figures, exist_ok=True)
        for fn, name, title in ((chart_share_of_copy, "share_of_copy.png",
                                 "share of copy bandwidth vs hidden size"),
                                (chart_replay_per_node, "replay_per_node.png",
                                 "replay time per node vs batch"),
                                (chart_check_overhead, "check_overhead.png",
                                 "check overhead vs graph size")):
            path = os.path.join(args.figures, name)
            if fn(data, path, stamp, plt):
                rel = os.path.relpath(path, os.path.dirname(os.path.abspath(args.md)))
                charts.append(f"![{title}]({rel})")
    if charts:
        lines.append(" ".join(charts) + "\n")
    stack_table(data, lines)
    stack_layout_table(data, lines)
    stack_hidden_table(data, lines)
    gated_stack_table(data, lines)
    spread_table(data, lines)
    check_table(data, lines)
    repair_table(data, lines)
    weights_table(data, lines)
    kernel_tables(data, lines)
    per_head_table(data, lines)
    dtype_table(data, lines)
    layout_table(data, lines)
    cpu_tables(data, lines)
    lines.append(END)
    block = "\n".join(lines) + "\n"

    text = open(args.md).read() if os.path.exists(args.md) else "# Benchmark results\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(args.md, "w") as f:
        f.write(text)
    print(f"report.py: wrote {args.md}" + (f" and {len(charts)} charts in {args.figures}"
                                             if charts else ""))


if __name__ == "__main__":
    main()
