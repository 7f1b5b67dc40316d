"""The reward read-out path (frozen prefix without autograd, last layer only at the read
positions) against the plain forward: same rewards, same loss, same gradients."""

from __future__ import annotations

import pytest
import torch

from rlhfkit.losses.reward import bradley_terry_loss
from rlhfkit.models.logprobs import packed_hidden_states
from rlhfkit.models.readout import frozen_prefix, read_hidden_states
from rlhfkit.models.tiny import tiny_causal_lm
from rlhfkit.packing import TokenizedGroup, collate_groups


def _groups(sizes, seed=0):
    """Groups of random byte tokens: prompt and completions of different lengths (padding)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, k in enumerate(sizes):
        ids = lambda n: torch.randint(3, 250, (n,), generator=g).tolist()  # noqa: E731
        out.append(TokenizedGroup(ids(3 + 2 * i), [ids(1 + (i + j) % 5) for j in range(k)], index=i))
    return out


def _model(attn: str, layers: int = 4, freeze: int = 2, seed: int = 0):
    model, tok = tiny_causal_lm(layers=layers, hidden=32, heads=4, kv_heads=2, seed=seed)
    model.config._attn_implementation = attn
    model.model.embed_tokens.requires_grad_(False)
    for layer in model.model.layers[:freeze]:
        layer.requires_grad_(False)
    head = torch.nn.Linear(32, 2, bias=False)
    torch.nn.init.normal_(head.weight, 0, 1.0, generator=torch.Generator().manual_seed(seed))
    return model.model, head, tok


def _plain(body, batch, head):
    hidden = packed_hidden_states(body, batch)  # (B, L, D)
    return head(hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.last_index))  # (S, H)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("sizes", [[2, 2, 2, 2], [3, 2, 4]])  # pairs; rankings of mixed K
def test_read_out_equals_plain_forward_loss_and_gradients(attn, sizes):
    body, head, tok = _model(attn)
    assert frozen_prefix(body) == 2
    batch = collate_groups(_groups(sizes), tok.pad_token_id)
    trainable = [p for p in list(body.parameters()) + list(head.parameters()) if p.requires_grad]
    results = []
    for run in (_plain, lambda b, x, h: h(read_hidden_states(b, x, x.last_index))):
        rewards = run(body, batch, head)  # (S, H)
        first, second = rewards[: len(sizes)], rewards[len(sizes) : 2 * len(sizes)]  # completions 0 and 1 per group
        loss = bradley_terry_loss(first[:, 0], second[:, 0])[0] + bradley_terry_loss(first[:, 1], second[:, 1])[0]
        grads = torch.autograd.grad(loss, trainable)
        results.append((rewards.detach(), loss.detach(), grads))
    (r0, l0, g0), (r1, l1, g1) = results
    torch.testing.assert_close(r1, r0, atol=1e-5, rtol=0)
    torch.testing.assert_close(l1, l0, atol=1e-5, rtol=0)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert r0.std() > 0.1 and max(g.abs().max() for g in g0) > 1e-3  # nothing trivially zero
    # the last layer's MLP got a gradient only through the read positions, and it is not zero
    assert body.layers[-1].mlp.down_proj.weight.requires_grad


def test_frozen_prefix_stops_at_the_first_trainable_layer():
    body, _, _ = _model("sdpa", layers=4, freeze=3)
    assert frozen_prefix(body) == 3
    body.embed_tokens.requires_grad_(True)
    assert frozen_prefix(body) == 0  # trainable embeddings: everything needs autograd
    body.embed_tokens.requires_grad_(False)
    body.layers[1].mlp.up_proj.requires_grad_(True)
    assert frozen_prefix(body) == 1


def test_no_grad_and_fully_trainable_models_take_the_same_values():
    body, head, tok = _model("sdpa", freeze=0)
    body.embed_tokens.requires_grad_(True)
    batch = collate_groups(_groups([2, 2, 2]), tok.pad_token_id)
    with torch.no_grad():
        plain = _plain(body, batch, head)
        fast = head(read_hidden_states(body, batch, batch.last_index))
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=0)
