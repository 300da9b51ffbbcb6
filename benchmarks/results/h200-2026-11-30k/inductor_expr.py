"""Runs one torch.compile'd peer expression (tools/bench/peers.py) a few times; the last call is
inside an NVTX range "profile" for ncu --nvtx --nvtx-include 'profile/'.
usage: s29_inductor.py VARIANT ROWS COLS"""
import sys
sys.path.insert(0, "tools/bench")
import torch
import peers

variant, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dev, dt = "cuda", torch.bfloat16
x = torch.randn(rows, cols, device=dev, dtype=dt)
g = 3 * torch.randn(rows, cols, device=dev, dtype=dt)
r = torch.randn(rows, cols, device=dev, dtype=dt)
w = 0.1 * torch.randn(cols, device=dev, dtype=dt)
expr = {"rms": peers.expr_rms, "zero_centred": peers.expr_zero_centred,
        "gated": peers.expr_gated, "fused_add": peers.expr_fused_add}[variant]
f = torch.compile(expr, dynamic=False, fullgraph=True)
args = {"gated": (x, w, g), "fused_add": (x, r, w)}.get(variant, (x, w))
with torch.no_grad():
    for _ in range(5):
        f(*args)
    torch.cuda.synchronize()
    torch.cuda.nvtx.range_push("profile")
    f(*args)
    torch.cuda.nvtx.range_pop()
    torch.cuda.synchronize()
print("done", variant, rows, cols)
