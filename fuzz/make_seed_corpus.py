#!/usr/bin/env python3
"""Writes the seed corpora and dictionaries of the fuzz targets (checked in under fuzz/corpus/).

    python3 fuzz/make_seed_corpus.py

graph_replay_fuzzer inputs are a 2-byte header then ops (see graph_replay_harness.cc):
  header[0]: bits 7 and 0: 0x81 the Qwen3 stack (plain RMSNorm; Llama's, without q/k norms, for a
             quarter of the size bytes), 0x01 gemma3, else qwen3.5; bit 1 legacy loader;
             (header[0] >> 2) % 3 the dtype (f32, bf16, f16; the bits above count too); bit 4
             engine rounding order; bits 5-6 initial policy (fail,
             recapture, rebind)
  header[1]: picks every size (hidden = 1 + header[1] % 40 below 240, else one of 48, 63, 64, 65,
             72, 96, 127, 128, 129, 136, 200, 255, 256, 257, 520, 1040; the rest from a fixed
             mix of it; 232-239: deep models of 10-12 layers with heads of 16-128 elements) and the buckets: {1, 4} for half the size bytes, else {1, 2, 4}, {2, 4}
             or {1, 3, 4} (bucket_set()), and rms_norm_eps: 1e-6 for half of them, else 1e-5 or 0.25
  ops (byte % 16): LOAD mask seed flags | SWAP ab | INPUTS seed | BATCH b | REPLAY | EAGER |
       RECAPTURE | POLICY p | REBIND_ALIVE slot seed | FREE_REALLOC slot squat | STALE pick seed |
       RESLICE slot where | TIE from to | PACK mask where | REPEAT times length | UPDATES flags
  FREE_REALLOC with the op byte's bit 4 set: the slot's memory, unchanged, in a new storage (same
       address and layout; squat: the new storage spans the old one); PACK with bit 4: derived
       buffers (mask picks them) into disjoint views of one storage, bit 5: with the parameters of
       their dtype
  LOAD flags: bit 0 via a safetensors image, bit 1 source dtype ((flags & 0x7F) >> 2) % 3 (f32,
       bf16, f16) (a conversion unless it is the parameter's; with bit 3 too the dtype rotates with
       the tensor's position: mixed dtypes), bit 4 reverse order, bit 5 one tensor of a wrong
       shape (refused, nothing changes), bit 6 an unexpected extra tensor (bits 5 and 6 without bit 0:
       a second tensor of the first picked name instead, refused), bit 7 values
       of a wide range (2^-30 to 2^17) with rounding ties, one in eight a special value (zeros,
       subnormals, infinities, NaNs; f16 sources: any bits)
  LOAD seed byte: the values' seed; with flags bit 0, its bit 7 loads the image through files
       (layers/checkpoint_dir.h: a scratch directory's model.safetensors, or with bit 6 two
       shards and their index; with bit 5 the names under "model.language_model."; with bit 4
       the prefix detected by the loader; with bit 3 check_finite on: every tensor holding NaN
       or infinity refused by name), for loads expected to succeed otherwise; the loader writes
       in natural name order
  LOAD op byte's high nibble, the loader's options: bit 4 no missing parameter allowed, bit 5
       ignore_unexpected flipped (refused without bit 4, ignored with it), bit 6 no dtype
       conversion allowed (a refusal must name every tensor refused, and change nothing), bit 7
       one picked parameter's after-load hook fails once, before or after the module's own (the
       load must fail naming it, restore every weight, and leave stale buffers as they were)
  REPLAY op byte: bits 5 to 7 all set, one more byte b: a burst of 256 + 3 b replays in one
       step (checked in full first and last; nothing changes between them)
  BATCH b: batch 1 + b % 4, or, with b's bit 7, 5: no bucket holds it (a replay must be refused,
       out of range, touching nothing; an eager step runs it)
  REBIND_ALIVE op byte: bit 4 a transient layout change instead (the slot as a view of the same
       bytes in another layout, every bucket's graph's Check() compared with the expected
       violations, then the slot's tensor back)
  RECAPTURE op byte: bit 5 a module's structure changes (MarkStructureChanged; one more byte
       picks the module), else bit 4 the graphs are invalidated (each recaptures before its next
       replay), else both recapture now
  UPDATES: full loads (a trainer's update loop), as many as the op byte's high nibble says:
       1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 8, 16, 32, 64, 128 (flags as LOAD's bits 0-4)
  REPEAT: the next 1 + length % 4 ops run (times < 0xC0 ? 2 + times % 4 : 2 + (times - 0xC0) * 2)
       times (so up to 128; nested, more), at most 512 ops per input in all (an UPDATES op counts
       as one however many loads it runs; at most 2048 loads per input)
The seeds together reach every op, every fault kind, every policy, every loader path, every stack
and norm class, and runs of hundreds of loads of the same modules.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
(LOAD, SWAP, INPUTS, BATCH, REPLAY, EAGER, RECAPTURE, POLICY, REBIND_ALIVE, FREE_REALLOC, STALE,
 RESLICE, TIE, PACK, REPEAT, UPDATES) = range(16)
FAIL, RECAP, REBIND = 0, 1, 2
QWEN35, GEMMA3, QWEN3, LLAMA = range(4)
SAFETENSORS, CONVERT, REVERSE, INVALID, EXTRA, WIDE = 1, 2, 16, 32, 64, 128
F32, BF16, F16 = 0, 1, 2  # source dtypes of a conversion, and header dtypes (core/dtype.h's order)
F32_MODEL, BF16_MODEL, F16_MODEL = F32, BF16, F16


def is_llama_size(size):
    """Whether the Qwen3 stack is Llama's (no q/k norms) for this size byte."""
    mix = ((size + 1) * 2654435761) & 0xFFFFFFFF
    return (mix >> 29) & 3 == 0


BUCKET_SETS = [(1, 4), (1, 4), (1, 2, 4), (1, 4), (2, 4), (1, 4), (1, 3, 4), (1, 4)]


def bucket_set(size):
    """The buckets the harness captures for this size byte."""
    mix = ((size + 1) * 2654435761) & 0xFFFFFFFF
    return BUCKET_SETS[(mix >> 2) % 8]


def size_with_buckets(buckets, start=0):
    """The first size byte from `start` (below 240) whose inputs capture `buckets`."""
    return next(s for s in range(start, 240) if bucket_set(s) == buckets)


def header(gemma=False, legacy=False, dtype=0, engine=False, policy=FAIL, size=15, stack=None):
    if stack is None:
        stack = GEMMA3 if gemma else QWEN35
    if stack in (QWEN3, LLAMA):
        # The nearest size byte that gives the stack asked for.
        while is_llama_size(size) != (stack == LLAMA):
            size = (size + 1) % 256
    h0 = (int(stack != QWEN35) | int(legacy) << 1 | int(engine) << 4 | policy << 5 |
          int(stack in (QWEN3, LLAMA)) << 7)
    # The harness reads the dtype as (h0 >> 2) % 3, the bits above included: the 2-bit field that
    # gives the dtype asked for.
    field = next(d for d in range(3) if ((h0 >> 2) + d) % 3 == dtype)
    return bytes([h0 | field << 2, size])


def convert(src_dtype):
    return CONVERT | src_dtype << 2


def times(n):
    """The REPEAT byte for about n runs (2 <= n <= 128)."""
    if n <= 5:
        return n - 2
    return 0xC0 + (n - 2 + 1) // 2


def updates(nibble):
    """The UPDATES op byte for the count at `nibble` (1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 8, 16, 32,
    64, 128)."""
    return UPDATES | nibble << 4


NO_MISSING, FLIP_UNEXPECTED, NO_CONVERSION, FAILING_HOOK = 0x10, 0x20, 0x40, 0x80
MIXED = 8  # LOAD flags: with convert(), each tensor's dtype rotates
# LOAD seed byte bits (with SAFETENSORS)
FILES, SHARDED, PREFIXED, DETECT, CHECK_FINITE = 0x80, 0x40, 0x20, 0x10, 0x08
BURST = REPLAY | 0xE0  # the REPLAY op byte of a burst (one more byte: how many)


def strict():
    """The LOAD op byte of a strict load (no missing parameter, no unexpected tensor)."""
    return LOAD | NO_MISSING


def structure_change():
    """The RECAPTURE op byte that changes a module's structure instead (one more byte: which)."""
    return RECAPTURE | 0x20


def invalidate():
    """The RECAPTURE op byte that invalidates the graphs instead."""
    return RECAPTURE | 0x10


def rewrap():
    """The FREE_REALLOC op byte that rewraps the slot's memory in a new storage instead."""
    return FREE_REALLOC | 0x10


def pack_derived(with_params=False):
    """The PACK op byte that packs derived buffers (with their dtype's parameters) instead."""
    return PACK | 0x10 | int(with_params) << 5


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
    "rebind_alive_static": header() + ops((BATCH, 3), REPLAY, (REBIND_ALIVE, 40, 1), REPLAY,
                                          (POLICY, RECAP), REPLAY),
    "free_realloc_same_address": header() + ops((FREE_REALLOC, 2, 0), REPLAY, (POLICY, REBIND), REPLAY),
    "free_realloc_squatter": header(policy=REBIND) + ops((FREE_REALLOC, 1, 1), REPLAY, (POLICY, FAIL),
                                                          (FREE_REALLOC, 1, 1), REPLAY),
    "stale_source": header() + ops((STALE, 0, 3), REPLAY, (POLICY, RECAP), REPLAY, (STALE, 1, 4),
                                   (POLICY, REBIND), REPLAY),
    "reslice": header() + ops((RESLICE, 2, 3), REPLAY, (POLICY, RECAP), REPLAY, (RESLICE, 2, 5),
                              (POLICY, FAIL), REPLAY, (POLICY, REBIND), REPLAY),
    "recapture_clears": header() + ops((REBIND_ALIVE, 3, 2), RECAPTURE, REPLAY, (STALE, 0, 1),
                                       RECAPTURE, REPLAY, (POLICY, REBIND), REPLAY),
    "gemma_f16_engine": header(gemma=True, dtype=F16_MODEL, engine=True, size=63) +
                        ops((LOAD, 0xFF, 2, 1), (BATCH, 3), REPLAY, (REBIND_ALIVE, 5, 1), REPLAY,
                            (POLICY, REBIND), REPLAY, EAGER),
    "gemma_f32_legacy": header(gemma=True, legacy=True, dtype=F32_MODEL, size=6) + ops((SWAP, 1), REPLAY, (POLICY, RECAP), REPLAY),
    "qwen_odd_sizes": header(size=0) + ops((LOAD, 0x55, 8, 0), REPLAY, (FREE_REALLOC, 7, 1),
                                           (POLICY, REBIND), (BATCH, 0), REPLAY),
    "all_linear_layers": header(size=81) + ops((REBIND_ALIVE, 20, 0), REPLAY,
                                               (REBIND_ALIVE, 30, 0), REPLAY),
    # Wide rows (size bytes 240-255): the kernels' 64-element blocks and vector tails.
    "wide_rows_65": header(dtype=BF16_MODEL, size=243) +
                    ops((LOAD, 0xFF, 4, 0x81), (BATCH, 3), REPLAY, (FREE_REALLOC, 1, 0),
                        (POLICY, REBIND), REPLAY, EAGER),
    "wide_rows_520": header(gemma=True, dtype=F16_MODEL, size=254) +
                      ops((LOAD, 0xFF, 6, 0x05), (BATCH, 2), REPLAY, (STALE, 0, 2),
                          (POLICY, RECAP), REPLAY),
    # Tied weights and packed views (aliases in the harness's value image).
    "tie_then_load": header(size=9) + ops((TIE, 0, 1), REPLAY, (LOAD, 0x03, 9, 0), REPLAY,
                                          (POLICY, REBIND), REPLAY, EAGER),
    "pack_overlapping": header(stack=QWEN3, size=20) + ops((PACK, 0xFF, 0x55), (POLICY, RECAP), REPLAY,
                                                           (LOAD, 0xFF, 4, REVERSE), REPLAY),
    # The same memory in a new storage (same address and layout), and derived buffers packed into
    # one storage, alone or with their sources (the op byte's bits 4 and 5).
    "rewrap_param_and_derived": header(gemma=True, size=9) + ops(
        (rewrap(), 2, 0), REPLAY, (POLICY, REBIND), (rewrap(), 1, 1), REPLAY, (LOAD, 0xFF, 3, 0), REPLAY),
    "rewrap_under_recapture": header(policy=RECAP, size=21) + ops(
        (rewrap(), 0, 1), (BATCH, 3), REPLAY, (rewrap(), 4, 0), EAGER, REPLAY),
    "pack_derived": header(gemma=True, size=13) + ops(
        (pack_derived(), 0xFF, 1), REPLAY, (POLICY, REBIND), REPLAY, (LOAD, 0x0F, 4, 0), REPLAY,
        (STALE, 1, 1), (POLICY, RECAP), REPLAY),
    "pack_derived_with_sources_f32": header(dtype=F32_MODEL, size=10) + ops(
        (pack_derived(with_params=True), 0xFF, 2), (POLICY, REBIND), REPLAY,
        (LOAD, 0x33, 5, 0), REPLAY, (STALE, 0, 2), (POLICY, FAIL), REPLAY, (POLICY, REBIND), REPLAY),
    # Strict loads (the op byte's bit 4: no missing, no unexpected tensor), and conversions of
    # wide-range values with rounding ties (flags bit 7) into f16 and bf16 parameters.
    "strict_loads": header(size=18) + ops(
        (strict(), 0xFF, 3, 0), REPLAY, (strict(), 0x07, 4, 0), REPLAY,
        (strict(), 0xFF, 5, EXTRA | SAFETENSORS), EAGER, REPLAY),
    "wide_conversions_f16": header(gemma=True, dtype=F16_MODEL, size=22) + ops(
        (LOAD, 0xFF, 6, convert(F32) | WIDE), REPLAY, EAGER,
        (LOAD, 0xFF, 7, SAFETENSORS | convert(BF16) | WIDE), (BATCH, 3), REPLAY),
    "wide_conversions_bf16": header(stack=QWEN3, dtype=BF16_MODEL, size=25) + ops(
        (LOAD, 0xFF, 8, convert(F32) | WIDE), REPLAY, (updates(9), convert(F32) | WIDE), REPLAY),
    # The Qwen3 / Llama stacks (plain RMSNorm) and every loader path.
    "qwen3_loads": header(stack=QWEN3, size=23) + ops(
        (LOAD, 0xFF, 1, SAFETENSORS), REPLAY, (LOAD, 0x0F, 2, convert(F32)), (BATCH, 2), REPLAY,
        (LOAD, 0xF0, 3, SAFETENSORS | convert(F16)), EAGER, (LOAD, 0xFF, 4, REVERSE), REPLAY),
    "llama_f16_rebind": header(stack=LLAMA, dtype=F16_MODEL, policy=REBIND, size=37) + ops(
        (REBIND_ALIVE, 0, 3), REPLAY, (LOAD, 0xFF, 5, convert(BF16)), (BATCH, 3), REPLAY),
    "qwen3_f32_from_bf16_safetensors": header(stack=QWEN3, dtype=F32_MODEL, size=12) + ops(
        (LOAD, 0xFF, 6, SAFETENSORS | convert(BF16)), REPLAY, (LOAD, 0x33, 7, convert(F16)), REPLAY),
    "rejected_and_extra_loads": header(size=17) + ops(
        (LOAD, 0xFF, 8, INVALID), REPLAY, (LOAD, 0x0F, 9, EXTRA | SAFETENSORS), REPLAY,
        (LOAD, 0xFF, 10, INVALID | SAFETENSORS | EXTRA), EAGER),
    "gemma_conversions": header(gemma=True, dtype=1, size=26) + ops(
        (LOAD, 0xFF, 11, convert(F32)), REPLAY, (LOAD, 0xFF, 12, SAFETENSORS | convert(BF16)),
        (STALE, 2, 1), (POLICY, RECAP), REPLAY),
    # The loader's options (the LOAD op byte's high nibble) and loaders failing mid-way.
    "load_options": header(size=24) + ops(
        (LOAD | NO_MISSING | FLIP_UNEXPECTED, 0x0F, 3, EXTRA), REPLAY,
        (LOAD | FLIP_UNEXPECTED, 0x0F, 4, EXTRA | SAFETENSORS), REPLAY,
        (LOAD | NO_CONVERSION, 0xFF, 5, convert(F32) | MIXED), REPLAY,
        (LOAD | NO_MISSING | FLIP_UNEXPECTED, 0xFF, 6, EXTRA), EAGER,
        (LOAD, 0xFF, 7, SAFETENSORS | convert(F32) | MIXED), REPLAY,
        (LOAD, 0x0F, 8, INVALID | EXTRA), REPLAY),
    "failing_loaders": header(size=28) + ops(
        (LOAD | FAILING_HOOK, 0xFF, 3, 0), REPLAY, (STALE, 0, 3),
        (LOAD | FAILING_HOOK, 0x0F, 5, SAFETENSORS), REPLAY, (POLICY, RECAP),
        (LOAD | FAILING_HOOK, 0xFF, 7, convert(F32)), REPLAY, (TIE, 0, 1),
        (LOAD | FAILING_HOOK, 0xFF, 8, REVERSE), REPLAY),
    "failing_loaders_gemma_legacy_packed": header(gemma=True, legacy=True, policy=REBIND, size=31) + ops(
        (pack_derived(), 0xFF, 1), (STALE, 1, 2), (LOAD | FAILING_HOOK, 0xFF, 4, 0), REPLAY,
        (REPEAT, times(20), 1), (LOAD | FAILING_HOOK, 0x55, 9, 0), REPLAY),
    # Every bucket set, every batch (and one no bucket holds) in each.
    **{"buckets_" + "_".join(map(str, b)): header(size=size_with_buckets(b, 40)) + ops(
        (BATCH, 0), REPLAY, (BATCH, 1), REPLAY, (BATCH, 2), REPLAY, (BATCH, 3), REPLAY,
        (BATCH, 0x80), REPLAY, (REBIND_ALIVE, 1, 1), (POLICY, REBIND), (BATCH, 1), REPLAY,
        (STALE, 0, 1), (POLICY, RECAP), (BATCH, 0), REPLAY)
       for b in [(1, 2, 4), (2, 4), (1, 3, 4)]},
    "layout_changes": header(size=45) + ops(
        (REBIND_ALIVE | 0x10, 0, 0), (REBIND_ALIVE | 0x10, 7, 0), REPLAY, (REBIND_ALIVE, 2, 1),
        (REBIND_ALIVE | 0x10, 30, 0), (REBIND_ALIVE | 0x10, 2, 0), (POLICY, REBIND), REPLAY,
        (REBIND_ALIVE | 0x10, 41, 0), REPLAY),
    # Loads through checkpoint files: one file, two shards and an index, a multimodal prefix.
    "checkpoint_files": header(size=34) + ops(
        (LOAD, 0xFF, FILES, SAFETENSORS), REPLAY,
        (LOAD, 0xFF, FILES | SHARDED, SAFETENSORS | convert(F32) | MIXED), REPLAY,
        (LOAD | NO_MISSING | FLIP_UNEXPECTED, 0xFF, FILES | SHARDED | PREFIXED, SAFETENSORS | EXTRA),
        (LOAD, 0x0F, FILES | PREFIXED, SAFETENSORS | REVERSE), REPLAY,
        (PACK, 0xFF, 0x55), (LOAD, 0xFF, FILES | SHARDED | 1, SAFETENSORS), REPLAY, EAGER),
    # The prefix detected, non-finite values refused (the seed byte's bits 4 and 3).
    "checkpoint_files_detect_finite": header(size=36) + ops(
        (LOAD, 0xFF, FILES | DETECT, SAFETENSORS), REPLAY,
        (LOAD, 0xFF, FILES | PREFIXED | DETECT | SHARDED, SAFETENSORS | convert(F32)), REPLAY,
        (LOAD, 0xFF, FILES | CHECK_FINITE, SAFETENSORS | WIDE), REPLAY,
        (LOAD, 0x0F, FILES | CHECK_FINITE | SHARDED | PREFIXED, SAFETENSORS | convert(F32) | WIDE),
        EAGER, (LOAD, 0xFF, FILES | CHECK_FINITE | 2, SAFETENSORS), REPLAY),
    # Special values (zeros, subnormals, infinities, NaNs) from every source dtype.
    "special_values_f16": header(dtype=F16_MODEL, size=21) + ops(
        (LOAD, 0xFF, 5, WIDE), REPLAY, (LOAD, 0xFF, 6, convert(F32) | WIDE), EAGER,
        (LOAD, 0xFF, 7, SAFETENSORS | convert(BF16) | WIDE), REPLAY),
    "special_values_bf16_from_f16": header(gemma=True, dtype=BF16_MODEL, size=14) + ops(
        (LOAD, 0xFF, 8, convert(F16) | WIDE), REPLAY, (STALE, 0, 1), (POLICY, RECAP),
        (LOAD, 0xFF, 9, SAFETENSORS | convert(F16) | MIXED | WIDE), REPLAY),
    # Deep models (10-12 layers: natural and lexicographic name orders differ).
    "deep_qwen35_files": header(size=235) + ops(
        (LOAD, 0xFF, FILES, SAFETENSORS), REPLAY, (TIE, 0, 41),
        (LOAD, 0xFF, FILES | SHARDED, SAFETENSORS), REPLAY, (REBIND_ALIVE, 50, 1),
        (POLICY, REBIND), REPLAY),
    "deep_gemma3": header(gemma=True, dtype=BF16_MODEL, size=237) + ops(
        (LOAD, 0xFF, 4, 0), (BATCH, 2), REPLAY, (STALE, 3, 1), (POLICY, RECAP), REPLAY),
    # Replay bursts: hundreds of replays in one step, then a fault.
    "replay_bursts": header(size=29) + ops(
        REPLAY, (BURST, 200), (REBIND_ALIVE, 2, 1), REPLAY, (POLICY, REBIND), (BURST, 255),
        (STALE, 0, 1), (POLICY, RECAP), (BURST, 0), (BATCH, 2), REPLAY),
    # Structure changes and invalidated graphs (the RECAPTURE op byte's bits 5 and 4).
    "structure_changes": header(size=16) + ops(
        (structure_change(), 3), REPLAY, (POLICY, RECAP), REPLAY, (structure_change(), 0),
        (REBIND_ALIVE, 2, 1), (POLICY, REBIND), REPLAY, invalidate(), (REBIND_ALIVE, 3, 1), REPLAY,
        (BATCH, 2), REPLAY, (structure_change(), 5), (STALE, 0, 2), (POLICY, FAIL), REPLAY),
    "batch_without_bucket": header(gemma=True, size=33) + ops(
        (BATCH, 0x80), REPLAY, EAGER, (REBIND_ALIVE, 1, 1), REPLAY, (BATCH, 2), (POLICY, REBIND),
        REPLAY),
    # Long runs: hundreds of loads of the same modules, checked after every load and replay.
    "repeat_swaps_250": header(size=11) + ops((REPEAT, times(125), 1), (SWAP, 1), (SWAP, 0), REPLAY),
    "repeat_loads_replays_120": header(gemma=True, size=5) + ops(
        (REPEAT, times(120), 1), (LOAD, 0xFF, 1, 0), REPLAY),
    "repeat_qwen3_safetensors_100": header(stack=QWEN3, size=8) + ops(
        (REPEAT, times(100), 1), (LOAD, 0xFF, 2, SAFETENSORS | convert(F32)), REPLAY),
    "repeat_llama_conversions_60": header(stack=LLAMA, dtype=1, size=30) + ops(
        (REPEAT, times(60), 2), (LOAD, 0xFF, 3, convert(F16)), (LOAD, 0x0F, 4, REVERSE), REPLAY),
    "repeat_faults_under_rebind": header(policy=REBIND, size=14) + ops(
        (REPEAT, times(60), 3), (LOAD, 0x0F, 3, 0), (REBIND_ALIVE, 1, 2), REPLAY, (BATCH, 3), REPLAY),
    "updates_64_then_faults": header(size=19) + ops((updates(14), 0), REPLAY, (REBIND_ALIVE, 3, 1),
                                                    (updates(11), SAFETENSORS), REPLAY),
    "updates_128_qwen3_converted": header(stack=QWEN3, dtype=2, size=27) + ops(
        (updates(15), convert(BF16)), (POLICY, REBIND), REPLAY),
    "updates_32_gemma_legacy_rebind": header(gemma=True, legacy=True, policy=REBIND, size=4) + ops(
        (updates(13), REVERSE), REPLAY, (BATCH, 3), REPLAY),
    "repeat_updates_1024": header(gemma=True, size=7) + ops(
        (REPEAT, times(8), 0), (updates(15), SAFETENSORS), REPLAY, (BATCH, 3), REPLAY),
    "repeat_nested": header(size=3) + ops(
        (REPEAT, times(9), 1), (REPEAT, times(50), 0), (SWAP, 1), REPLAY),
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

def kernel_seeds():
    """cpu_kernel_fuzzer: every x dtype, weight kind, order, residual and gate, lengths around the
    8-lane vectors and 64-element blocks, every value family (see cpu_kernel_fuzzer.cc)."""
    seeds = {}
    for x in range(3):
        for kind in range(2):
            for order in range(2):
                for residual in range(2):
                    for gate in range(2):
                        cols = (x * 7 + kind * 3 + order * 5 + residual + gate * 2) % 10
                        family = (x + kind + order + residual) % 4
                        name = "x%d_kind%d_order%d_res%d_gate%d" % (x, kind, order, residual, gate)
                        seeds[name] = bytes([x, kind | 2, order | residual << 1 | gate << 2,
                                             (x + order) % 4, cols, family | (x % 3) << 2]) + b"seed"
    seeds["f16_4096_wide_range"] = bytes([1, 2, 2, 0, 9, 1]) + b"wide"
    seeds["bf16_4096_raw_bits"] = bytes([0, 2, 0, 0, 9, 2]) + b"raw"
    seeds["f32_out_from_bf16"] = bytes([4, 0, 0, 1, 5, 0]) + b"promote"
    return seeds


DICTS = {
    # Headers of each stack, single ops, and runs of ops worth repeating.
    "graph_replay_fuzzer": [header(stack=QWEN3)[:1], header(gemma=True)[:1]] +
                           [bytes([op]) for op in range(16)] + [
        bytes([updates(14), 0]), bytes([updates(12), SAFETENSORS]), bytes([updates(11), convert(F32)]),
        bytes([rewrap()]), bytes([pack_derived()]), bytes([pack_derived(with_params=True)]),
        bytes([strict()]), ops((LOAD, 0xFF, 9, convert(F32) | WIDE)),
        bytes([LOAD | FAILING_HOOK]), bytes([LOAD | NO_CONVERSION]), bytes([LOAD | FLIP_UNEXPECTED]),
        bytes([structure_change()]), bytes([invalidate()]),
        ops((REPEAT, 0xE0, 1), (SWAP, 1), (SWAP, 0)),
        ops((REPEAT, 0xE0, 1), (LOAD, 0xFF, 1, 0), REPLAY),
        ops((REPEAT, 0x01, 2), (LOAD, 0x0F, 3, convert(F32)), EAGER, REPLAY),
        ops((LOAD, 0xFF, 5, SAFETENSORS | convert(F16))),
        ops((LOAD, 0xFF, 6, INVALID)),
        ops((LOAD, 0xFF, 7, EXTRA)),
        ops((POLICY, RECAP), REPLAY), ops((POLICY, REBIND), REPLAY), ops((BATCH, 3), REPLAY),
        ops((BATCH, 0x80), REPLAY),
        ops((PACK, 0xFF, 0x55)), ops((TIE, 0, 1)), ops((STALE, 0, 1)),
        ops((BURST, 0xFF)), ops((LOAD, 0xFF, FILES | DETECT, SAFETENSORS)),
        ops((LOAD, 0xFF, FILES | CHECK_FINITE, SAFETENSORS | WIDE)),
    ],
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
    for name, seeds in (("graph_replay_fuzzer", GRAPH_SEEDS), ("safetensors_fuzzer", SAFETENSORS_SEEDS),
                        ("cpu_kernel_fuzzer", kernel_seeds())):
        d = os.path.join(HERE, "corpus", name)
        os.makedirs(d, exist_ok=True)
        for seed_name, data in seeds.items():
            with open(os.path.join(d, "seed_" + seed_name), "wb") as f:
                f.write(data)
        if name in DICTS:
            write_dict(os.path.join(HERE, name + ".dict"), DICTS[name])


if __name__ == "__main__":
    main()
