"""Last hidden states at a few read positions of a packed batch, without the work nothing reads.

A reward model reads one hidden state per scored segment (2 per pair), and the HH recipe freezes
the embeddings and the lower 24 of 30 layers. ``read_hidden_states`` equals the plain path

    packed_hidden_states(body, batch).reshape(-1, D).index_select(0, index)   # (S, D)

(to fp32 rounding: the same operations, fewer of them) but, for decoder stacks whose forward it
replicates (``LAYERWISE``: Llama, which SmolLM2 is), runs the stack layer by layer and

- computes the frozen prefix (the embeddings and the leading layers without a trainable parameter)
  under ``torch.no_grad``: autograd would record nothing there anyway, so this only drops its
  per-op bookkeeping, and it makes the boundary where gradients start explicit;
- runs the last layer's query projection, attention, output projection and MLP, and the final
  norm, only at the read positions. No other position of the last layer feeds anything; the
  read positions still attend to every key and value of their segments, so the last layer's
  keys and values are computed everywhere. With SmolLM2 (hidden 576, MLP 1536, 9 query / 3
  key-value heads) that skips ~94% of the last layer, a sixth of the trainable part's work.

Any other decoder stack, a last layer whose attention is not ``LlamaAttention``, and a last layer
sharded by FSDP (its weights are gathered only by its own forward) take the plain path for that
part, so the result never depends on which path ran.
"""

from __future__ import annotations

import contextlib
import sys

import torch

from rlhfkit.models.logprobs import additive_mask, packed_hidden_states
from rlhfkit.packing import PackedBatch

LAYERWISE = ("LlamaModel",)  # decoder stacks whose forward ``_layerwise`` replicates exactly
PRUNABLE_ATTENTION = ("LlamaAttention",)  # last-layer attentions ``_last_layer_at`` replicates


def frozen_prefix(body) -> int:
    """How many leading decoder layers run without autograd: 0 unless the embeddings are frozen,
    else the layers before the first one with a trainable parameter."""
    if any(p.requires_grad for p in body.embed_tokens.parameters()):
        return 0
    count = 0
    for layer in body.layers:
        if any(p.requires_grad for p in layer.parameters()):
            break
        count += 1
    return count


def read_hidden_states(body, batch: PackedBatch, index: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(S, D) final hidden states (after the last norm) at the flat positions ``index`` (S,) into
    the (B * L) positions of ``batch``; see the module docstring for what is skipped."""
    if type(body).__name__ not in LAYERWISE:
        hidden = packed_hidden_states(body, batch, dtype)  # (B, L, D)
        return hidden.reshape(-1, hidden.shape[-1]).index_select(0, index)
    return _layerwise(body, batch, index)


def _layerwise(body, batch: PackedBatch, index: torch.Tensor) -> torch.Tensor:
    """``LlamaModel.forward`` (transformers 5) unrolled: embeddings, rotary tables, the layers with
    the prepared 4D mask, the final norm; the frozen prefix without autograd, the last layer at
    ``index`` only."""
    layers = list(body.layers[: body.config.num_hidden_layers])
    frozen = frozen_prefix(body) if torch.is_grad_enabled() else 0
    with torch.no_grad() if frozen else contextlib.nullcontext():
        hidden = body.embed_tokens(batch.input_ids)  # (B, L, D)
        # additive once per batch (SDPA would turn a boolean mask into this in every layer, twice),
        # in the residual stream's dtype: an fp32 mask under an fp64 model changed the rewards
        mask = additive_mask(batch.attention_mask, hidden.dtype)  # (B, 1, L, L)
        rotary = body.rotary_emb(hidden, position_ids=batch.position_ids)  # (cos, sin), each (B, L, d_head)
        for layer in layers[:frozen]:
            hidden = layer(hidden, attention_mask=mask, position_embeddings=rotary,
                           position_ids=batch.position_ids, use_cache=False)
    last = layers[-1] if frozen < len(layers) and _prunable(layers[-1]) else None
    for layer in layers[frozen : len(layers) - (last is not None)]:
        hidden = layer(hidden, attention_mask=mask, position_embeddings=rotary,
                       position_ids=batch.position_ids, use_cache=False)
    if last is None:
        picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, index)  # (S, D)
    else:
        picked = _last_layer_at(last, hidden, mask, rotary, index)  # (S, D)
    return body.norm(picked)


def _prunable(layer) -> bool:
    """A last layer ``_last_layer_at`` can run piecewise: Llama attention, and not an FSDP unit
    (FSDP gathers a unit's weights only when its own ``forward`` runs; calling its projections
    one by one would meet shards)."""
    if type(layer.self_attn).__name__ not in PRUNABLE_ATTENTION:
        return False
    fsdp = sys.modules.get("torch.distributed.fsdp")  # only loaded when something sharded a model
    return fsdp is None or not isinstance(layer, fsdp.FSDPModule)


def _last_layer_at(layer, hidden: torch.Tensor, mask: torch.Tensor, rotary, index: torch.Tensor) -> torch.Tensor:
    """``LlamaDecoderLayer.forward`` evaluated at the flat positions ``index`` (S,) only: keys and
    values at every position (B, L), queries, attention, output projection and MLP at S of them.
    Each read position becomes its own batch entry with one query and its row's keys, values and
    mask row."""
    attn = layer.self_attn
    rope = sys.modules[type(attn).__module__].apply_rotary_pos_emb
    attention = _attention_function(attn)
    b, length, width = hidden.shape
    d_head = attn.head_dim
    rows = torch.div(index, length, rounding_mode="floor")  # (S,) row of each read position
    normed = layer.input_layernorm(hidden)  # (B, L, D)
    keys = attn.k_proj(normed).view(b, length, -1, d_head).transpose(1, 2)  # (B, Hkv, L, d)
    values = attn.v_proj(normed).view(b, length, -1, d_head).transpose(1, 2)  # (B, Hkv, L, d)
    cos, sin = rotary  # (B or 1, L, d)
    keys = rope(keys, keys, cos, sin)[1]
    queries = attn.q_proj(normed.reshape(-1, width).index_select(0, index))  # (S, H * d)
    queries = queries.view(index.shape[0], -1, 1, d_head)  # (S, H, 1, d)
    flat_cos = cos.expand(b, -1, -1).reshape(b * length, -1).index_select(0, index)[:, None]  # (S, 1, d)
    flat_sin = sin.expand(b, -1, -1).reshape(b * length, -1).index_select(0, index)[:, None]
    queries = rope(queries, queries, flat_cos, flat_sin)[0]
    read_mask = mask[rows, :, index - rows * length].unsqueeze(2)  # (S, 1, 1, L): each read position's mask row
    out, _ = attention(attn, queries, keys.index_select(0, rows), values.index_select(0, rows), read_mask,
                       dropout=0.0, scaling=attn.scaling)  # (S, 1, H, d)
    residual = hidden.reshape(-1, width).index_select(0, index)  # (S, D)
    hidden_at = residual + attn.o_proj(out.reshape(index.shape[0], -1))
    return hidden_at + layer.mlp(layer.post_attention_layernorm(hidden_at))


def _attention_function(attn):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    module = sys.modules[type(attn).__module__]
    return ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation, module.eager_attention_forward)
