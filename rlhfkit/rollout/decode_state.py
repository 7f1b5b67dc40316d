"""Decoding state of a batch: the KV cache plus the one-token forward step.

Two implementations of the same small interface (``step(tokens, running) -> logits``,
``select(rows)``), both fed by one HF prefill:

- ``HFDecodeState``: the model's own forward with its ``DynamicCache`` (any causal LM).
- ``FusedLlamaDecodeState``: for Llama-architecture models (SmolLM2, the tiny test model), the
  same maths with less work per token. Where HF's forward loses time at batch sizes of 8-16
  on a CPU: every step it concatenates the whole cache of every layer with the new key/value
  (``torch.cat`` copies O(length) per token), rebuilds a 4-D mask, recomputes the rotary
  table, and runs 7 separate matmuls per layer. Here the cache is a preallocated buffer the new
  key/value is written into, the mask is a preallocated boolean buffer, cos/sin come from a
  table computed once, and q/k/v and gate/up are each one matmul over concatenated weights
  (what vLLM does with its fused QKV and gate-up layers): a product with a concatenated matrix
  equals the separate products. Every weight the step multiplies by (q/k/v, o, gate/up, down and
  the output head) is kept transposed, as a contiguous (in, out) matrix, so each product is a
  plain ``x @ W`` rather than ``F.linear``'s ``x @ W.T``: at decoding's 8-16 rows the CPU gemm
  runs the transposed form 2-8x slower (all of one SmolLM2 decoding step's products: 63 ms as
  ``F.linear``, 23 ms pre-transposed, 2 cores, measured 2026-11-29). These copies (one copy of
  the weights, ~0.1-0.2 s for SmolLM2, small beside a rollout) are rebuilt for every sampling
  call, so the state always samples from the current policy. Tensor version counters cannot tell when to skip that: the
  fused AdamW kernel updates parameters in place without bumping ``_version``, and a cache keyed
  on it sampled from stale weights after every optimiser step (the resume invariance test of the
  online trainers caught it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class HFDecodeState:
    """One-token steps through the model's own forward and DynamicCache."""

    def __init__(self, model, cache, mask: torch.Tensor, positions: torch.Tensor):
        self.model, self.cache, self.mask, self.positions = model, cache, mask, positions

    def select(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.mask, self.positions = self.mask[rows], self.positions[rows]

    def step(self, tokens: torch.Tensor, running: torch.Tensor) -> torch.Tensor:
        """tokens (R,), running (R,) bool -> next-token logits (R, V) float32."""
        self.mask = torch.cat([self.mask, running[:, None].to(self.mask.dtype)], dim=1)  # (R, L + 1)
        out = self.model(input_ids=tokens[:, None], attention_mask=self.mask,
                         position_ids=self.positions[:, None], cache=self.cache, use_cache=True)
        self.positions = self.positions + 1
        return out.logits[:, -1].float()


def fused_llama_supported(model) -> bool:
    """Plain Llama layers only: no biases, SiLU MLP, no tensor-parallel split, and a rotary
    embedding that depends on the position alone (not "dynamic" NTK, which rescales with the
    sequence length, so a table computed once per call would differ from HF's per-step one)."""
    config = model.config
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return (
        getattr(config, "model_type", None) == "llama"
        and rope.get("rope_type", "default") not in ("dynamic", "longrope")
        and not getattr(config, "attention_bias", False)
        and not getattr(config, "mlp_bias", False)
        and getattr(config, "hidden_act", None) == "silu"
        and getattr(config, "pretraining_tp", 1) == 1
        and hasattr(model, "model") and hasattr(model, "lm_head")
    )


class FusedLlamaWeights:
    """A Llama model's decoding weights as contiguous (in, out) matrices, q/k/v and gate/up
    concatenated, rebuilt on every call (see the module doc for why transposed, and why no cache)."""

    def __init__(self, model):
        self.model = model
        self.layers: list[tuple[torch.Tensor, ...]] = []
        self.head: torch.Tensor | None = None

    def current(self) -> list[tuple[torch.Tensor, ...]]:
        """Per layer (qkv (D, Q+2K), o (Q, D), gate_up (D, 2I), down (I, D)); ``head``: (D, V)."""
        t = lambda w: w.t().contiguous()  # noqa: E731
        with torch.no_grad():
            self.layers = []
            for layer in self.model.model.layers:
                att, mlp = layer.self_attn, layer.mlp
                qkv = torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight], dim=0).t().contiguous()
                gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], dim=0).t().contiguous()
                self.layers.append((qkv, t(att.o_proj.weight), gate_up, t(mlp.down_proj.weight)))
            self.head = t(self.model.lm_head.weight)
        return self.layers


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class FusedLlamaDecodeState:
    """Static-buffer KV cache and fused projections for Llama decoding (see module doc)."""

    def __init__(self, model, weights: FusedLlamaWeights, cache, mask: torch.Tensor,
                 positions: torch.Tensor, max_new_tokens: int):
        self.model, self.fused = model, weights.current()
        self.head = weights.head
        rows, prompt_len = mask.shape
        capacity = prompt_len + max_new_tokens
        self.keys, self.values = [], []
        for layer in cache.layers:  # prefill keys/values (R, KVH, P, hd) into (R, KVH, capacity, hd)
            k = layer.keys.new_empty(rows, layer.keys.shape[1], capacity, layer.keys.shape[3])
            v = torch.empty_like(k)
            k[:, :, :prompt_len] = layer.keys
            v[:, :, :prompt_len] = layer.values
            self.keys.append(k)
            self.values.append(v)
        self.mask = torch.zeros(rows, capacity, dtype=torch.bool, device=mask.device)
        self.mask[:, :prompt_len] = mask.bool()
        self.length = prompt_len
        self.positions = positions
        # cos/sin for every position this batch can reach, from the model's own rotary module.
        table_positions = torch.arange(int(positions.max()) + max_new_tokens + 1, device=mask.device)[None]
        probe = torch.zeros(1, device=mask.device, dtype=self.keys[0].dtype)
        cos, sin = model.model.rotary_emb(probe, table_positions)
        self.cos_table, self.sin_table = cos[0], sin[0]  # (N, hd)

    def select(self, rows: torch.Tensor) -> None:
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]
        self.mask, self.positions = self.mask[rows], self.positions[rows]

    def step(self, tokens: torch.Tensor, running: torch.Tensor) -> torch.Tensor:
        """tokens (R,), running (R,) bool -> next-token logits (R, V) float32."""
        inner, t = self.model.model, self.length
        self.mask[:, t] = running
        attend = self.mask[:, None, None, : t + 1]  # (R, 1, 1, t + 1)
        cos = self.cos_table[self.positions][:, None, None, :]  # (R, 1, 1, hd)
        sin = self.sin_table[self.positions][:, None, None, :]
        hidden = inner.embed_tokens(tokens)  # (R, D)
        rows = hidden.shape[0]
        for i, layer in enumerate(inner.layers):
            att = layer.self_attn
            qkv_w, o_w, gate_up_w, down_w = self.fused[i]
            heads, kv_heads, hd = att.config.num_attention_heads, att.config.num_key_value_heads, att.head_dim
            qkv = layer.input_layernorm(hidden) @ qkv_w  # (R, (H + 2 KVH) hd)
            q, k, v = qkv.view(rows, heads + 2 * kv_heads, 1, hd).split([heads, kv_heads, kv_heads], dim=1)
            q = q * cos + _rotate_half(q) * sin  # (R, H, 1, hd)
            self.keys[i][:, :, t : t + 1] = k * cos + _rotate_half(k) * sin
            self.values[i][:, :, t : t + 1] = v
            out = F.scaled_dot_product_attention(
                q, self.keys[i][:, :, : t + 1], self.values[i][:, :, : t + 1], attn_mask=attend,
                scale=att.scaling, enable_gqa=heads != kv_heads)  # (R, H, 1, hd)
            hidden = hidden + out.reshape(rows, heads * hd) @ o_w
            gate, up = (layer.post_attention_layernorm(hidden) @ gate_up_w).chunk(2, dim=-1)
            hidden = hidden + (F.silu(gate) * up) @ down_w
        self.length += 1
        self.positions = self.positions + 1
        return (inner.norm(hidden) @ self.head).float()  # (R, V)
