#!/usr/bin/env python3
"""Writes small Hugging Face checkpoints with transformers' own `save_pretrained`, as test data for
normgraph's checkpoint loading (testdata/hf_checkpoints/, tested by hf_checkpoints_test there).

Each model is a randomly initialised, tiny configuration of a real architecture (a few hundred KB),
its norm weights set to random values (so a loader that mixes tensors up is caught), saved in
bfloat16 as transformers saves it: config.json plus one model.safetensors, or shards with
model.safetensors.index.json (`max_shard_size`). CPU tensors; no GPU needed.

    python3 tools/hf/make_hf_checkpoints.py --out testdata/hf_checkpoints

Folders written (a multimodal one is skipped, with the reason, if this transformers cannot build
it; the others are required):
  qwen3_5_text/            Qwen3_5ForCausalLM, one file
  qwen3_5_text_sharded/    the same model, sharded
  gemma3_text/             Gemma3ForCausalLM, one file
  gemma3_text_sharded/     the same model, sharded
  gemma3_mm_sharded/       Gemma3ForConditionalGeneration (text model under model.language_model.)
  qwen3_5_mm_sharded/      Qwen3_5ForConditionalGeneration (text model under model.language_model.)
and, in each, normgraph_expected.json: the classes and versions used, the text model's prefix, every
tensor name on disk, and the norm weights of the text model (name, shape, dtype, float32 sum), which
are what normgraph must load; plus MANIFEST.json at the top with the versions and what was skipped.
"""
import argparse
import json
import os
import re
import shutil
import struct
import sys
import traceback

import torch
import transformers

SHARD_SIZE = "100KB"
NORM = re.compile(r"^(?P<prefix>.*?)(layers\.\d+\.(?:[a-z_]+\.)?[a-z_]*norm\.weight|norm\.weight)$")


def tiny_qwen3_5_text():
    cfg = transformers.Qwen3_5TextConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        linear_num_key_heads=2, linear_key_head_dim=16, linear_num_value_heads=4,
        linear_value_head_dim=16, max_position_embeddings=256)
    return cfg


def tiny_gemma3_text():
    return transformers.Gemma3TextConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=256,
        sliding_window=64, query_pre_attn_scalar=32)


def causal_lm(config):
    return transformers.AutoModelForCausalLM.from_config(config)


def make_qwen3_5_text():
    return causal_lm(tiny_qwen3_5_text())


def make_gemma3_text():
    return causal_lm(tiny_gemma3_text())


def make_gemma3_mm():
    vision = transformers.SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        image_size=32, patch_size=16)
    cfg = transformers.Gemma3Config(text_config=tiny_gemma3_text().to_dict(),
                                    vision_config=vision.to_dict(), mm_tokens_per_image=4)
    return transformers.Gemma3ForConditionalGeneration(cfg)


def make_qwen3_5_mm():
    cfg_cls = getattr(transformers, "Qwen3_5Config")
    vision = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
              "patch_size": 8, "temporal_patch_size": 2, "spatial_merge_size": 2,
              "out_hidden_size": 64, "num_position_embeddings": 64}
    cfg = cfg_cls(text_config=tiny_qwen3_5_text().to_dict(), vision_config=vision)
    model_cls = getattr(transformers, "Qwen3_5ForConditionalGeneration", None)
    if model_cls is None:
        return transformers.AutoModelForImageTextToText.from_config(cfg)
    return model_cls(cfg)


MODELS = [
    # folder, builder, sharded, required
    ("qwen3_5_text", make_qwen3_5_text, False, True),
    ("qwen3_5_text_sharded", make_qwen3_5_text, True, True),
    ("gemma3_text", make_gemma3_text, False, True),
    ("gemma3_text_sharded", make_gemma3_text, True, True),
    ("gemma3_mm_sharded", make_gemma3_mm, True, False),
    ("qwen3_5_mm_sharded", make_qwen3_5_mm, True, False),
]


def randomize_norms(model, seed):
    """Norm weights get random values around their init (0 for zero-centred norms, 1 for the
    others), so every tensor is distinguishable."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            module = name.rsplit(".", 2)[-2] if name.count(".") >= 1 else name
            if "norm" not in module or not name.endswith("weight"):
                continue
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32) * 0.25
            base = 1.0 if bool((p == 1).all()) else 0.0
            p.copy_((noise + base).to(p.dtype))


def tensors_on_disk(folder):
    """name -> (dtype, shape, file) from the safetensors headers (no torch needed to read them)."""
    out = {}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".safetensors"):
            continue
        with open(os.path.join(folder, f), "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
        for name, entry in header.items():
            if name != "__metadata__":
                out[name] = (entry["dtype"], entry["shape"], f)
    return out


def write_expected(folder, model, sharded):
    from safetensors import safe_open
    on_disk = tensors_on_disk(folder)
    # The text model's prefix: where layer 0's input_layernorm is (not Qwen's mtp. layers).
    prefixes = sorted({m.group("prefix") for n in on_disk
                       for m in [re.match(r"^(?P<prefix>.*?)layers\.\d+\.input_layernorm\.weight$", n)]
                       if m and not m.group("prefix").startswith("mtp")})
    if len(prefixes) != 1:
        raise RuntimeError(f"{folder}: cannot tell the text model's prefix among {prefixes}")
    prefix = prefixes[0]
    norms = {}
    for name, (dtype, shape, f) in sorted(on_disk.items()):
        m = NORM.match(name)
        if not m or m.group("prefix") != prefix or "visual" in name or "vision" in name:
            continue
        with safe_open(os.path.join(folder, f), framework="pt") as st:
            t = st.get_tensor(name)
        norms[name] = {"shape": shape, "dtype": dtype, "sum": float(t.float().sum()),
                       "first": [float(v) for v in t.float().flatten()[:4]]}
    if sharded and not os.path.exists(os.path.join(folder, "model.safetensors.index.json")):
        raise RuntimeError(f"{folder}: save_pretrained wrote no index (not sharded)")
    expected = {
        "model_class": type(model).__name__, "config_class": type(model.config).__name__,
        "transformers": transformers.__version__, "torch": torch.__version__,
        "prefix": prefix, "sharded": sharded,
        "files": sorted({f for (_, _, f) in on_disk.values()}),
        "tensors": sorted(on_disk), "norm_weights": norms,
    }
    with open(os.path.join(folder, "normgraph_expected.json"), "w") as fh:
        json.dump(expected, fh, indent=1)
        fh.write("\n")
    return expected


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder to write (e.g. testdata/hf_checkpoints)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    manifest = {"transformers": transformers.__version__, "torch": torch.__version__,
                "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
                "written": {}, "skipped": {}}
    failed = False
    for i, (folder, build, sharded, required) in enumerate(MODELS):
        path = os.path.join(args.out, folder)
        try:
            torch.manual_seed(args.seed + i)
            model = build().to(torch.bfloat16)
            randomize_norms(model, args.seed + 100 + i)
            shutil.rmtree(path, ignore_errors=True)
            if sharded:
                model.save_pretrained(path, max_shard_size=SHARD_SIZE)
            else:
                model.save_pretrained(path)
            expected = write_expected(path, model, sharded)
            size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
            manifest["written"][folder] = {
                "class": expected["model_class"], "files": len(expected["files"]),
                "tensors": len(expected["tensors"]), "norm_weights": len(expected["norm_weights"]),
                "prefix": expected["prefix"], "bytes": size}
            print(f"{folder}: {expected['model_class']}, {len(expected['files'])} safetensors "
                  f"file(s), {len(expected['tensors'])} tensors, "
                  f"{len(expected['norm_weights'])} norm weights under '{expected['prefix']}', "
                  f"{size / 1024:.0f} KiB")
        except Exception as e:  # report and go on; required models fail the run at the end
            shutil.rmtree(path, ignore_errors=True)
            reason = f"{type(e).__name__}: {e}"
            manifest["skipped"][folder] = reason
            print(f"{folder}: {'FAILED' if required else 'skipped'}: {reason}", file=sys.stderr)
            if required:
                traceback.print_exc()
                failed = True
    with open(os.path.join(args.out, "MANIFEST.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")
    print(f"wrote {args.out}/MANIFEST.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
