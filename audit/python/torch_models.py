"""Decode-like norm stacks built from transformers' own norm modules, for the GPU tests and the
overhead measurement (torch and transformers needed; run on a GPU host).

Each norm is transformers' module (Qwen3_5RMSNorm or Gemma3RMSNorm) plus the derived buffer an
engine like SGLang keeps: ``gemma_weight = 1 + weight`` in float32, registered as a buffer and used
in forward. ``legacy_load`` is SGLang's weight loader before the fix (``self.gemma_weight =
param.data + 1.0``, a new allocation); ``load`` is the fix (in place). With a fresh buffer the
module's forward equals transformers' own forward bit for bit (the same float32 ``1 + w``).

Parameter names follow Hugging Face checkpoints: ``model.layers.3.input_layernorm.gemma_weight``.
"""

from __future__ import annotations

import torch
from torch import nn

KINDS = {
    "qwen3_5": ("transformers.models.qwen3_5.modeling_qwen3_5", "Qwen3_5RMSNorm",
                "transformers.models.qwen3_5.configuration_qwen3_5", "Qwen3_5TextConfig"),
    "gemma3": ("transformers.models.gemma3.modeling_gemma3", "Gemma3RMSNorm",
               "transformers.models.gemma3.configuration_gemma3", "Gemma3TextConfig"),
}


def _import(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


def config_eps(kind: str) -> float:
    """rms_norm_eps of the model's own (default) text config."""
    _, _, config_module, config_name = KINDS[kind]
    try:
        return float(_import(config_module, config_name)().rms_norm_eps)
    except Exception:  # a config that needs arguments: transformers' default for both
        return 1e-6


_classes = {}


def norm_class(kind: str):
    """transformers' norm class of `kind` with an SGLang-style derived buffer."""
    if kind in _classes:
        return _classes[kind]
    module_path, class_name, _, _ = KINDS[kind]
    base = _import(module_path, class_name)

    class WithGemmaWeight(base):
        hf_class = base

        def __init__(self, dim: int, eps: float):
            super().__init__(dim, eps=eps)
            self.register_buffer("gemma_weight", torch.empty(dim, dtype=torch.float32), persistent=False)
            self.refresh()

        @torch.no_grad()
        def refresh(self):
            """Recomputes the derived buffer in place."""
            self.gemma_weight.copy_(self.weight.float() + 1.0)

        def forward(self, x):
            return (self._norm(x.float()) * self.gemma_weight).type_as(x)

        def hf_forward(self, x):
            """transformers' own forward (computes 1 + weight from the parameter each call)."""
            return base.forward(self, x)

        @torch.no_grad()
        def legacy_load(self, loaded):
            """SGLang's GemmaRMSNorm weight loader before the fix: re-allocates gemma_weight."""
            self.weight.data.copy_(loaded)
            self.gemma_weight = self.weight.data + 1.0

        @torch.no_grad()
        def load(self, loaded):
            """The fixed loader: everything in place."""
            self.weight.data.copy_(loaded)
            self.refresh()

    WithGemmaWeight.__name__ = WithGemmaWeight.__qualname__ = class_name + "WithGemmaWeight"
    _classes[kind] = WithGemmaWeight
    return WithGemmaWeight


class DecoderLayer(nn.Module):
    """Norm, a bf16 projection standing in for attention, residual; norm, a bf16 MLP, residual."""

    def __init__(self, norm_cls, hidden: int, eps: float):
        super().__init__()
        self.input_layernorm = norm_cls(hidden, eps)
        self.mixer = nn.Linear(hidden, hidden, bias=False, dtype=torch.bfloat16)
        self.post_attention_layernorm = norm_cls(hidden, eps)
        self.mlp = nn.Linear(hidden, hidden, bias=False, dtype=torch.bfloat16)

    def forward(self, h, hf: bool = False):
        n1 = self.input_layernorm.hf_forward if hf else self.input_layernorm
        n2 = self.post_attention_layernorm.hf_forward if hf else self.post_attention_layernorm
        h = h + self.mixer(n1(h))
        return h + self.mlp(n2(h))


class TextModel(nn.Module):
    def __init__(self, norm_cls, hidden: int, layers: int, eps: float):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(norm_cls, hidden, eps) for _ in range(layers))
        self.norm = norm_cls(hidden, eps)

    def forward(self, h, hf: bool = False):
        for layer in self.layers:
            h = layer(h, hf)
        return self.norm.hf_forward(h) if hf else self.norm(h)


class DecodeStack(nn.Module):
    """One decode step of a norm stack: hidden states [batch, hidden] in bf16 in and out."""

    def __init__(self, kind: str, hidden: int, layers: int, seed: int = 0, device: str = "cuda"):
        super().__init__()
        self.kind, self.norm_cls = kind, norm_class(kind)
        with torch.device(device):  # built in place: no host-side initialisation of big layers
            self.model = TextModel(self.norm_cls, hidden, layers, config_eps(kind))
        gen = torch.Generator(device=device).manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    p.copy_(torch.randn(p.shape, generator=gen, device=device) * hidden ** -0.5)
                else:
                    p.copy_(torch.randn(p.shape, generator=gen, device=device) * 0.2)
            for norm in self.norms():
                norm.refresh()

    def forward(self, h):
        return self.model(h)

    def hf_forward(self, h):
        """The same stack with transformers' own norm forward."""
        return self.model(h, hf=True)

    def norms(self):
        return [m for m in self.modules() if isinstance(m, self.norm_cls)]

    def norm_names(self):
        return [name for name, m in self.named_modules() if isinstance(m, self.norm_cls)]


def capture(fn, x, warmup: int = 3):
    """Captures fn(x) into a torch.cuda.CUDAGraph(keep_graph=True), as PyTorch's docs do it (warm-up
    on a side stream first). Returns (graph, static output)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(warmup):
            fn(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph(keep_graph=True)
    with torch.cuda.graph(graph), torch.no_grad():
        out = fn(x)
    if hasattr(graph, "instantiate"):
        graph.instantiate()
    torch.cuda.synchronize()
    return graph, out
