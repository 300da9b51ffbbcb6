#!/usr/bin/env python3
"""Writes the seed corpora and dictionaries of the fuzz targets (checked in under fuzz/corpus/).

    python3 fuzz/make_seed_corpus.py

graph_replay_fuzzer inputs are a 2-byte header then ops (see graph_replay_harness.cc):
  header[0]: bit 0 gemma3 (else qwen3.5), bit 1 legacy loader, bits 2-3 dtype (bf16, f16, f32),
             bit 4 engine rounding order, bits 5-6 initial policy (fail, recapture, rebind)
  header[1]: picks every size (hidden = 1 + header[1] % 40; the rest from a fixed mix of it)
  ops: LOAD mask seed via_safetensors | SWAP ab | INPUTS seed | BATCH b | REPLAY | EAGER |
       RECAPTURE | POLICY p | REBIND_ALIVE slot seed | FREE_REALLOC slot squat | STALE pick seed |
       RESLICE slot where
The seeds together reach every op, every fault kind and every policy, for both models.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
(LOAD, SWAP, INPUTS, BATCH, REPLAY, EAGER, RECAPTURE, POLICY, REBIND_ALIVE, FREE_REALLOC, STALE,
 RESLICE) = range(12)
FAIL, RECAP, REBIND = 0, 1, 2


def header(gemma=False, legacy=False, dtype=0, engine=False, policy=FAIL, size=15):
    h0 = int(gemma) | int(legacy) << 1 | dtype << 2 | int(engine) << 4 | policy << 5
    return bytes([h0, size])


def ops(*seq):
    out = bytearray()
    for op in seq:
        out += bytes(op if isinstance(op, tuple) else (op,))
    return bytes(out)


GRAPH_SEEDS = {
    "updates_fail": header() + ops((LOAD, 0xFF, 3, 0), REPLAY, (BATCH, 2), REPLAY, (LOAD, 0x0F, 4, 1),
                                   (BATCH, 3), REPLAY, EAGER),
    "swap_a_b_a": header(policy=REBIND) + ops((SWAP, 1), REPLAY, (SWAP, 0), REPLAY, (SWAP, 1),
                                              (INPUTS, 9), REPLAY),
    "legacy_fail_then_rebind": header(legacy=True) + ops((LOAD, 0xFF, 5, 0), REPLAY, (POLICY, REBIND),
                                                         REPLAY, (LOAD, 0x33, 6, 1), REPLAY),
    "legacy_recapture": header(legacy=True, policy=RECAP) + ops((LOAD, 0xFF, 7, 1), (BATCH, 1),
                                                                REPLAY, (BATCH, 3), REPLAY),
    "rebind_alive_param": header() + ops((REBIND_ALIVE, 2, 1), REPLAY, (POLICY, REBIND), REPLAY),
    "rebind_alive_static": header() + ops((REBIND_ALIVE, 40, 1), (BATCH, 3), REPLAY, (POLICY, RECAP),
                                          REPLAY),
    "free_realloc_same_address": header() + ops((FREE_REALLOC, 2, 0), REPLAY, (POLICY, REBIND), REPLAY),
    "free_realloc_squatter": header(policy=REBIND) + ops((FREE_REALLOC, 1, 1), REPLAY, (POLICY, FAIL),
                                                          (FREE_REALLOC, 1, 1), REPLAY),
    "stale_source": header() + ops((STALE, 0, 3), REPLAY, (POLICY, RECAP), REPLAY, (STALE, 1, 4),
                                   (POLICY, REBIND), REPLAY),
    "reslice": header() + ops((RESLICE, 2, 3), REPLAY, (POLICY, RECAP), REPLAY, (RESLICE, 2, 5),
                              (POLICY, FAIL), REPLAY, (POLICY, REBIND), REPLAY),
    "recapture_clears": header() + ops((REBIND_ALIVE, 3, 2), RECAPTURE, REPLAY, (STALE, 0, 1),
                                       RECAPTURE, REPLAY, (POLICY, REBIND), REPLAY),
    "gemma_f16_engine": header(gemma=True, dtype=1, engine=True, size=63) +
                        ops((LOAD, 0xFF, 2, 1), (BATCH, 3), REPLAY, (REBIND_ALIVE, 5, 1), REPLAY,
                            (POLICY, REBIND), REPLAY, EAGER),
    "gemma_f32_legacy": header(gemma=True, legacy=True, dtype=2, size=6) + ops((SWAP, 1), REPLAY, (POLICY, RECAP), REPLAY),
    "qwen_odd_sizes": header(size=0) + ops((LOAD, 0x55, 8, 0), REPLAY, (FREE_REALLOC, 7, 1),
                                           (POLICY, REBIND), (BATCH, 0), REPLAY),
    "all_linear_layers": header(size=81) + ops((REBIND_ALIVE, 20, 0), REPLAY,
                                                           (REBIND_ALIVE, 30, 0), REPLAY),
}


def safetensors_bytes(tensors, metadata=None, pad=True):
    hdr, data = {}, b""
    if metadata:
        hdr["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(hdr, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def bf16(values):
    return b"".join(struct.pack("<f", v)[2:] for v in values)


PARAMS = [  # the safetensors fuzzer's model (safetensors_fuzzer.cc)
    ("model.layers.0.input_layernorm.weight", 8),
    ("model.layers.0.post_attention_layernorm.weight", 8),
    ("model.layers.0.linear_attn.norm.weight", 4),
    ("model.layers.1.input_layernorm.weight", 8),
    ("model.layers.1.post_attention_layernorm.weight", 8),
    ("model.layers.1.self_attn.q_norm.weight", 4),
    ("model.layers.1.self_attn.k_norm.weight", 4),
    ("model.norm.weight", 8),
]


def full(dtype="BF16"):
    out = []
    for i, (name, n) in enumerate(PARAMS):
        vals = [0.125 * (i + 1) - 0.0625 * j for j in range(n)]
        raw = bf16(vals) if dtype == "BF16" else b"".join(struct.pack("<f", v) for v in vals)
        out.append((name, dtype, [n], raw))
    return out


SAFETENSORS_SEEDS = {
    "full_bf16": safetensors_bytes(full(), {"format": "pt"}),
    "full_f32_converted": safetensors_bytes(full("F32")),
    "subset": safetensors_bytes(full()[:3]),
    "unexpected_name": safetensors_bytes(full() + [("lm_head.weight", "BF16", [2], bf16([1, 2]))]),
    "wrong_shape": safetensors_bytes(full()[:-1] + [("model.norm.weight", "BF16", [7], bf16([1] * 7))]),
    "wrong_dtype": safetensors_bytes(full()[:-1] + [("model.norm.weight", "I16", [8], bf16([1] * 8))]),
    "unpadded_header": safetensors_bytes(full()[:2], pad=False),
    "nan_and_inf": safetensors_bytes([(PARAMS[0][0], "BF16", [8], bf16([float("nan"), float("inf"),
                                                                          -0.0, 1e38, -1e38, 1e-40, 3.0, -3.0]))]),
    "truncated": safetensors_bytes(full())[:-5],
    "empty_object": safetensors_bytes([]),
}

DICTS = {
    "graph_replay_fuzzer": [bytes([op]) for op in range(12)],
    "safetensors_fuzzer": [b'"dtype"', b'"shape"', b'"data_offsets"', b'"__metadata__"', b'"F32"',
                           b'"BF16"', b'"F16"', b'"I64"', b'"U8"', b'"F8_E4M3"', b"[0,", b"]}",
                           b'"format":"pt"'] + [json.dumps(n).encode() for n, _ in PARAMS],
}


def write_dict(path, entries):
    with open(path, "w") as f:
        for e in entries:
            f.write('"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\x%02x" % ord(c)
                                  for c in e.decode("latin-1")) + '"\n')


def main():
    for name, seeds in (("graph_replay_fuzzer", GRAPH_SEEDS), ("safetensors_fuzzer", SAFETENSORS_SEEDS)):
        d = os.path.join(HERE, "corpus", name)
        os.makedirs(d, exist_ok=True)
        for seed_name, data in seeds.items():
            with open(os.path.join(d, "seed_" + seed_name), "wb") as f:
                f.write(data)
        write_dict(os.path.join(HERE, name + ".dict"), DICTS[name])


if __name__ == "__main__":
    main()
