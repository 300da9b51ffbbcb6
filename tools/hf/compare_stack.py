#!/usr/bin/env python3
"""Runs Hugging Face's own norm modules over a decode step exported by normgraph and compares.

    bazel run -c opt //tools:export_stack_case -- --model=qwen3_5 --out_dir=DIR   (here)
    python3 tools/hf/compare_stack.py DIR [DIR...] [--json OUT]                  (GPU host)

The weights are loaded from DIR/weights.safetensors into transformers 5.17's modules
(Qwen3_5RMSNorm / Qwen3_5RMSNormGated, or Gemma3RMSNorm), which then run the step in exactly the
order of normgraph's NormStack::Forward (layers/qwen3_5_norm_stack.h, gemma3_norm_stack.h): the
residual adds in the activation dtype, identity mixers. Every output is compared with normgraph's,
on CUDA and on the CPU: the share of bit-identical elements and the worst difference in bf16 ulps.
"""
import argparse
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm
from transformers.models.qwen3_5.modeling_qwen3_5 import Qwen3_5RMSNorm, Qwen3_5RMSNormGated

EPS = 1e-6


def module(cls, weight, device):
    m = cls(weight.shape[0], eps=EPS).to(device=device, dtype=weight.dtype)
    with torch.no_grad():
        m.weight.copy_(weight)
    return m


def run_qwen(W, S, types, device):
    get = lambda n: W["model." + n].to(device)
    x = {k: v.to(device) for k, v in S.items()}
    out = {}
    residual = x["hidden_states"].clone()
    h = None
    with torch.no_grad():
        for i, t in enumerate(types):
            inp = module(Qwen3_5RMSNorm, get(f"layers.{i}.input_layernorm.weight"), device)
            post = module(Qwen3_5RMSNorm, get(f"layers.{i}.post_attention_layernorm.weight"), device)
            if i == 0:
                h = inp(residual)
            else:
                residual = residual + h
                h = inp(residual)
            if t == "full_attention":
                out[f"layers.{i}.q_normed"] = module(Qwen3_5RMSNorm, get(f"layers.{i}.self_attn.q_norm.weight"), device)(x["q"])
                out[f"layers.{i}.k_normed"] = module(Qwen3_5RMSNorm, get(f"layers.{i}.self_attn.k_norm.weight"), device)(x["k"])
            else:
                g = module(Qwen3_5RMSNormGated, get(f"layers.{i}.linear_attn.norm.weight"), device)
                out[f"layers.{i}.linear_out"] = g(x["linear_core"], x["linear_gate"])
            residual = residual + h
            h = post(residual)
        residual = residual + h
        out["out"] = module(Qwen3_5RMSNorm, get("norm.weight"), device)(residual)
        out["residual"] = residual
    return out


def run_gemma(W, S, layers, device):
    get = lambda n: module(Gemma3RMSNorm, W["model." + n].to(device), device)
    x = {k: v.to(device) for k, v in S.items()}
    out = {}
    residual = x["hidden_states"].clone()
    b = None
    with torch.no_grad():
        for i in range(layers):
            if i == 0:
                a = get(f"layers.{i}.input_layernorm.weight")(residual)
            else:
                residual = residual + b
                a = get(f"layers.{i}.input_layernorm.weight")(residual)
            out[f"layers.{i}.q_normed"] = get(f"layers.{i}.self_attn.q_norm.weight")(x["q"])
            out[f"layers.{i}.k_normed"] = get(f"layers.{i}.self_attn.k_norm.weight")(x["k"])
            b = get(f"layers.{i}.post_attention_layernorm.weight")(a)
            residual = residual + b
            a = get(f"layers.{i}.pre_feedforward_layernorm.weight")(residual)
            b = get(f"layers.{i}.post_feedforward_layernorm.weight")(a)
        residual = residual + b
        out["out"] = get("norm.weight")(residual)
        out["residual"] = residual
    return out


def ordered(t):
    i = t.contiguous().view(torch.int16).to(torch.int32)
    return torch.where(i < 0, -(i & 0x7FFF), i)


def compare(ours, theirs):
    total = identical = worst = 0
    per = {}
    for name, hf in theirs.items():
        mine = ours[name]
        hf = hf.cpu()
        assert mine.dtype == hf.dtype and mine.shape == hf.shape, name
        same = (mine.view(torch.int16) == hf.view(torch.int16)).sum().item()
        ulps = (ordered(mine) - ordered(hf)).abs().max().item()
        per[name] = {"identical": same, "total": mine.numel(), "worst_ulp": ulps}
        total += mine.numel()
        identical += same
        worst = max(worst, ulps)
    return {"identical": identical, "total": total, "share": identical / total, "worst_ulp": worst,
            "tensors": per}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="+")
    ap.add_argument("--json")
    args = ap.parse_args()
    report = {}
    for case in args.cases:
        W = load_file(f"{case}/weights.safetensors")
        with safe_open(f"{case}/step.safetensors", "pt") as f:
            meta = f.metadata()
        step = load_file(f"{case}/step.safetensors")
        inputs = {k: v for k, v in step.items() if k in ("hidden_states", "q", "k", "linear_core", "linear_gate")}
        ours = {k: v for k, v in step.items() if k not in inputs}
        for device in ["cuda", "cpu"]:
            if meta["model"] == "qwen3_5":
                theirs = run_qwen(W, inputs, meta["layer_types"].split(","), device)
            else:
                theirs = run_gemma(W, inputs, int(meta["layers"]), device)
            assert set(theirs) == set(ours), (sorted(theirs), sorted(ours))
            r = compare(ours, theirs)
            report[f"{meta['model']}/{device}"] = r
            print(f"{meta['model']} ({meta['layers']} layers) vs HF on {device}: "
                  f"{r['identical']}/{r['total']} elements bit-identical ({100 * r['share']:.4f}%), "
                  f"worst {r['worst_ulp']} bf16 ulp")
            worst = sorted(r["tensors"].items(), key=lambda kv: -kv[1]["worst_ulp"])[:3]
            for name, t in worst:
                print(f"    {name}: {t['identical']}/{t['total']} identical, worst {t['worst_ulp']} ulp")
    if args.json:
        json.dump(report, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
