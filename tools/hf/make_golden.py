#!/usr/bin/env python3
"""Writes the Hugging Face golden data that normgraph's numerics are tested against.

Runs the real transformers norm modules (LlamaRMSNorm, Qwen3RMSNorm, GemmaRMSNorm, Gemma3RMSNorm,
Qwen3NextRMSNorm, Qwen3_5RMSNorm, Qwen3NextRMSNormGated, Qwen3_5RMSNormGated, and a residual add
followed by a norm) on seeded random inputs and weights, and saves inputs, weights, outputs, torch's
per-row factor rsqrt(mean(x^2) + eps) and torch's silu(gate) as safetensors, one file per activation
dtype. Classes that share one formula are run separately and must agree bit for bit; one output per
formula family is stored.

Usage (on a GPU host with torch and transformers; the GPU bundle runs it):
  python3 tools/hf/make_golden.py --out testdata/hf_golden --device cuda

Also writes golden_families_<dtype>.safetensors: rows of hard families (all-equal, wide dynamic
range, huge and tiny magnitudes, one large value among small ones, plain random) at long hidden
sizes (up to 16384), with torch's factor and the Llama-order and zero-centred outputs, to measure
the per-row factor against the exact value and against torch's.
Also writes hf_configs.json (Qwen3_5TextConfig / Gemma3TextConfig defaults) and hf_sources.txt (the
source of every module used) next to the data, for provenance.
"""
import argparse
import importlib
import inspect
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file

EPS = 1e-6
HIDDEN_SIZES = [1, 7, 64, 128, 1000, 1536, 2560, 4096]
ELEMENT_BUDGET = 2048  # rows * hidden per case, keeps the data small

FAMILIES = {
    # formula family -> [(module path, class name)]
    "rms": [("transformers.models.llama.modeling_llama", "LlamaRMSNorm"),
            ("transformers.models.qwen3.modeling_qwen3", "Qwen3RMSNorm")],
    "zc": [("transformers.models.gemma.modeling_gemma", "GemmaRMSNorm"),
           ("transformers.models.gemma3.modeling_gemma3", "Gemma3RMSNorm"),
           ("transformers.models.qwen3_next.modeling_qwen3_next", "Qwen3NextRMSNorm"),
           ("transformers.models.qwen3_5.modeling_qwen3_5", "Qwen3_5RMSNorm")],
    "gated": [("transformers.models.qwen3_5.modeling_qwen3_5", "Qwen3_5RMSNormGated"),
              ("transformers.models.qwen3_next.modeling_qwen3_next", "Qwen3NextRMSNormGated")],
}

DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}


def load_classes():
    classes, sources = {}, []
    for family, entries in FAMILIES.items():
        classes[family] = []
        for module_path, name in entries:
            cls = getattr(importlib.import_module(module_path), name)
            classes[family].append((name, cls))
            sources.append(f"### {module_path}.{name}\n{inspect.getsource(cls)}\n")
    return classes, "".join(sources)


def rows_for(hidden):
    return max(1, min(64, ELEMENT_BUDGET // hidden))


def make_inputs(gen, rows, hidden, dtype, device):
    # Row scales span 1e-3 .. 1e2 so rounding, f16 subnormals and large values are all exercised.
    scales = torch.logspace(-3, 2, rows, dtype=torch.float64).float()
    perm = torch.randperm(rows, generator=gen)
    x = torch.randn(rows, hidden, generator=gen) * scales[perm].unsqueeze(1)
    residual = torch.randn(rows, hidden, generator=gen) * scales[perm.flip(0)].unsqueeze(1)
    gate = torch.randn(rows, hidden, generator=gen) * 3.0
    return [t.to(dtype).to(device) for t in (x, residual, gate)]


def run_family(classes, hidden, weight, device, *args):
    """Runs every class of a family with the given weight; all must agree bit for bit."""
    outs = []
    for name, cls in classes:
        module = cls(hidden, eps=EPS).to(device)
        with torch.no_grad():
            module.weight.data = weight.clone()
            outs.append((name, module(*args)))
    first_name, first = outs[0]
    for name, out in outs[1:]:
        if out.dtype != first.dtype or not torch.equal(out.view(torch.uint8), first.view(torch.uint8)):
            raise SystemExit(f"{name} and {first_name} disagree: the family assumption is wrong")
    return first


def inv_rms(x):
    # Exactly the operations the HF modules run: float32 upcast, pow, mean, + eps, rsqrt.
    xf = x.to(torch.float32)
    return torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)


FAMILY_HIDDEN = [2560, 12288]
FAMILY_ROWS = 2  # the per-row factor is what these files are for; keep them small


def family_rows(name, gen, rows, hidden, act):
    """Rows of one hard family, as float32 before the cast to the activation dtype."""
    # Magnitudes that stay finite in the activation dtype: f16 tops out at 65504.
    huge = {"f16": 3.0e4, "bf16": 1.0e30, "f32": 1.0e30}[act]
    tiny = {"f16": 1.0e-6, "bf16": 1.0e-25, "f32": 1.0e-25}[act]
    n = torch.randn(rows, hidden, generator=gen)
    if name == "random":
        return n
    if name == "equal":
        return torch.full((rows, hidden), 0.1) * torch.tensor([1.0, -3.0])[:rows, None]
    if name == "wide":
        return n * torch.exp2(torch.randint(-20, 21, (rows, hidden), generator=gen).float())
    if name == "huge":
        return n * huge
    if name == "tiny":
        return n * tiny
    if name == "spike":
        x = n * 1e-3
        x[:, hidden // 2] = 1.0e3 if act == "f16" else 1.0e4
        return x
    raise ValueError(name)


FAMILIES_OF_ROWS = ["random", "equal", "wide", "huge", "tiny", "spike"]


def make_families(args, classes, act_name, device):
    act = DTYPES[act_name]
    gen = torch.Generator().manual_seed(args.seed + 100 + list(DTYPES).index(act_name))
    tensors, meta = {}, {}
    for hidden in FAMILY_HIDDEN:  # one pair of weights per hidden size, shared by the families
        w_rms = (1.0 + 0.25 * torch.randn(hidden, generator=gen)).to(act).to(device)
        w_zc = (0.25 * torch.randn(hidden, generator=gen)).to(act).to(device)
        tensors.update({f"h{hidden}.w_rms": w_rms, f"h{hidden}.w_zc": w_zc})
    for fam in FAMILIES_OF_ROWS:
        for hidden in FAMILY_HIDDEN:
            k = f"{fam}.h{hidden}"
            x = family_rows(fam, gen, FAMILY_ROWS, hidden, act_name).to(act).to(device)
            w_rms, w_zc = tensors[f"h{hidden}.w_rms"], tensors[f"h{hidden}.w_zc"]
            with torch.no_grad():
                tensors.update({
                    f"{k}.x": x,
                    f"{k}.inv_rms": inv_rms(x).squeeze(-1),
                    f"{k}.out.rms": run_family(classes["rms"], hidden, w_rms, device, x),
                    f"{k}.out.zc": run_family(classes["zc"], hidden, w_zc, device, x),
                })
    meta.update({
        "activation_dtype": act_name, "eps": repr(EPS), "rows": str(FAMILY_ROWS),
        "families": ",".join(FAMILIES_OF_ROWS), "hidden_sizes": ",".join(map(str, FAMILY_HIDDEN)),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "command": "python3 tools/hf/make_golden.py " + " ".join(sys.argv[1:]),
    })
    fname = f"golden_families_{act_name}.safetensors"
    path = os.path.join(args.out, fname)
    save_file({n: t.contiguous().cpu() for n, t in tensors.items()}, path, metadata=meta)
    print(f"wrote {fname}: {os.path.getsize(path)} bytes, {len(tensors)} tensors")
    return fname, os.path.getsize(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seed", type=int, default=20261129)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    device = torch.device(args.device)
    classes, sources = load_classes()

    # (activation dtype, weight dtype) pairs: weights in the activation dtype, plus f32 weights with
    # bf16 activations (a model kept in f32 norms).
    pairs = [("bf16", "bf16"), ("f16", "f16"), ("f32", "f32"), ("bf16", "f32"), ("f16", "f32")]
    files = {}
    for act_name, w_name in pairs:
        act, wdt = DTYPES[act_name], DTYPES[w_name]
        gen = torch.Generator().manual_seed(args.seed + len(files))
        tensors, meta = {}, {}
        for hidden in HIDDEN_SIZES:
            rows = rows_for(hidden)
            k = f"h{hidden}"
            x, residual, gate = make_inputs(gen, rows, hidden, act, device)
            w_rms = (1.0 + 0.25 * torch.randn(hidden, generator=gen)).to(wdt).to(device)
            w_zc = (0.25 * torch.randn(hidden, generator=gen)).to(wdt).to(device)
            ones = torch.ones(hidden, dtype=wdt, device=device)
            zeros = torch.zeros(hidden, dtype=wdt, device=device)
            with torch.no_grad():
                s = x + residual  # the residual add as HF's decoder layers write it
                out = {
                    "rms": run_family(classes["rms"], hidden, w_rms, device, x),
                    "zc": run_family(classes["zc"], hidden, w_zc, device, x),
                    "gated": run_family(classes["gated"], hidden, w_rms, device, x, gate),
                    "rms_sum": run_family(classes["rms"], hidden, w_rms, device, s),
                    "zc_sum": run_family(classes["zc"], hidden, w_zc, device, s),
                    "rms_init": run_family(classes["rms"], hidden, ones, device, x),
                    "zc_init": run_family(classes["zc"], hidden, zeros, device, x),
                    "gated_init": run_family(classes["gated"], hidden, ones, device, x, gate),
                }
                tensors.update({
                    f"{k}.x": x, f"{k}.residual": residual, f"{k}.gate": gate, f"{k}.sum": s,
                    f"{k}.w_rms": w_rms, f"{k}.w_zc": w_zc,
                    f"{k}.inv_rms": inv_rms(x).squeeze(-1), f"{k}.inv_rms_sum": inv_rms(s).squeeze(-1),
                    f"{k}.silu_gate": torch.nn.functional.silu(gate.to(torch.float32)),
                })
                for name, t in out.items():
                    tensors[f"{k}.out.{name}"] = t
            meta[f"{k}.rows"] = str(rows)
        meta.update({
            "activation_dtype": act_name, "weight_dtype": w_name, "eps": repr(EPS),
            "hidden_sizes": ",".join(map(str, HIDDEN_SIZES)),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "families": json.dumps({f: [n for n, _ in c] for f, c in classes.items()}),
            "command": "python3 tools/hf/make_golden.py " + " ".join(sys.argv[1:]),
        })
        fname = f"golden_{act_name}_w{w_name}.safetensors"
        save_file({n: t.contiguous().cpu() for n, t in tensors.items()},
                  os.path.join(args.out, fname), metadata=meta)
        files[fname] = os.path.getsize(os.path.join(args.out, fname))
        print(f"wrote {fname}: {files[fname]} bytes, {len(tensors)} tensors")

    for act_name in ("bf16", "f16", "f32"):
        fname, size = make_families(args, classes, act_name, device)
        files[fname] = size

    with open(os.path.join(args.out, "hf_sources.txt"), "w") as f:
        f.write(f"# transformers {transformers.__version__}, torch {torch.__version__}\n" + sources)
    configs = {}
    for module_path, name in [("transformers.models.qwen3_5.configuration_qwen3_5", "Qwen3_5TextConfig"),
                              ("transformers.models.gemma3.configuration_gemma3", "Gemma3TextConfig")]:
        configs[name] = getattr(importlib.import_module(module_path), name)().to_dict()
    configs["transformers"] = transformers.__version__
    with open(os.path.join(args.out, "hf_configs.json"), "w") as f:
        json.dump(configs, f, indent=1, sort_keys=True, default=str)
    print("total bytes:", sum(files.values()))


if __name__ == "__main__":
    main()
