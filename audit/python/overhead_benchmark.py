"""What the audit costs: capture-time inventory and check() per replay, for 64-layer decode stacks.

For each hidden size: a DecodeStack (transformers' Qwen3.5 norm with the derived buffer, bf16
projections; see torch_models.py) is captured once into a CUDA graph, then:

- inventory: capture() (collecting names, the driver walk, indexing), median of --reps;
- replay: GPU time per replay (CUDA events around --replays back-to-back replays);
- check(): CPU time per call (mean over --checks calls), as a share of the replay's GPU time;
- loops of --replays steps, wall clock per step: replay only vs check_and_raise + replay, without
  synchronizing (an engine's steady state: the check runs while the previous replay is on the GPU)
  and synchronizing every step (latency when the CPU waits for each step);
- the failing path: check() after the legacy loader moved every derived buffer (messages built).

    python3 overhead_benchmark.py --layers 64 --hidden 1024,4096 --json overhead.json
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import normgraph_audit as na  # noqa: E402
import torch_models as tm  # noqa: E402


def gpu_time_per_replay_us(graph, n):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(n):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / n


def wall_per_step_us(step, n, sync_each):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
        if sync_each:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e6 / n


def measure(kind, hidden, layers, batch, replays, checks, reps):
    model = tm.DecodeStack(kind, hidden, layers, seed=1)
    x = torch.randn(batch, hidden, device="cuda").to(torch.bfloat16)
    graph, _ = tm.capture(model, x)
    for _ in range(20):  # clocks up
        graph.replay()
    torch.cuda.synchronize()

    inventory, audit = [], None
    for _ in range(reps):
        if audit is not None:
            audit.close()
        t0 = time.perf_counter()
        audit = na.capture(graph, model, name=f"{kind}/h{hidden}")
        inventory.append(time.perf_counter() - t0)
    assert audit.check().ok

    replay_gpu = statistics.median(gpu_time_per_replay_us(graph, replays) for _ in range(3))
    for _ in range(200):
        audit.check()
    check_us = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(checks):
            audit.check()
        check_us.append((time.perf_counter() - t0) * 1e6 / checks)
    check = statistics.median(check_us)

    def checked_replay():
        audit.check_and_raise()
        graph.replay()

    loops = {}
    for sync_each in (False, True):
        label = "sync_each_step" if sync_each else "async"
        plain = statistics.median(wall_per_step_us(graph.replay, replays, sync_each) for _ in range(3))
        checked = statistics.median(wall_per_step_us(checked_replay, replays, sync_each) for _ in range(3))
        loops[label] = {"replay_us": plain, "check_and_replay_us": checked,
                        "added_pct": 100.0 * (checked - plain) / plain}

    # The failing path: every derived buffer moved (old ones kept alive, so each is "moved").
    kept = dict(model.named_buffers())
    for norm in model.norms():
        norm.legacy_load(norm.weight.detach().clone())
    t0 = time.perf_counter()
    failing = audit.check()
    failing_ms = (time.perf_counter() - t0) * 1e3
    del kept

    row = {
        "kind": kind, "hidden": hidden, "layers": layers, "batch": batch,
        "graph_nodes": len(audit.nodes),
        "kernel_nodes": sum(n.kind == "kernel" for n in audit.nodes),
        "addresses": audit.reference_count,
        "named_tensors": len(audit.named),
        "checked_tensors": len(audit.watched),
        "unregistered_addresses": len(audit.unregistered),
        "unscanned_nodes": len(audit.unscanned_nodes),
        "inventory_ms_median": 1e3 * statistics.median(inventory),
        "inventory_breakdown_ms": {k: v * 1e3 for k, v in audit.timings.items()},
        "replay_gpu_us": replay_gpu,
        "check_us": check,
        "check_us_per_tensor": check / max(1, len(audit.watched)),
        "check_share_of_replay_pct": 100.0 * check / replay_gpu,
        "loops": loops,
        "failing_check_ms": failing_ms,
        "failing_violations": len(failing.violations),
    }
    audit.close()
    del graph, model
    torch.cuda.empty_cache()
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", default="qwen3_5", choices=sorted(tm.KINDS))
    parser.add_argument("--layers", type=int, default=64)
    parser.add_argument("--hidden", default="1024,4096")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--replays", type=int, default=200)
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    rows = []
    for hidden in (int(h) for h in args.hidden.split(",")):
        row = measure(args.kind, hidden, args.layers, args.batch, args.replays, args.checks, args.reps)
        rows.append(row)
        print(f"{args.kind} {args.layers} layers, hidden {hidden}, batch {args.batch}: "
              f"{row['graph_nodes']} nodes ({row['kernel_nodes']} kernels), {row['checked_tensors']} of "
              f"{row['named_tensors']} named tensors read; inventory {row['inventory_ms_median']:.1f} ms; "
              f"replay {row['replay_gpu_us']:.0f} us GPU; check {row['check_us']:.1f} us "
              f"({row['check_us_per_tensor'] * 1e3:.0f} ns/tensor) = {row['check_share_of_replay_pct']:.2f}% "
              f"of a replay; loop +{row['loops']['async']['added_pct']:.1f}% async, "
              f"+{row['loops']['sync_each_step']['added_pct']:.1f}% synced; failing check "
              f"{row['failing_check_ms']:.1f} ms for {row['failing_violations']} violations", flush=True)
    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d"), "argv": sys.argv}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
