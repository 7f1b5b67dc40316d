"""Reward models: a causal-LM backbone with a linear scalar head on the last non-padding token.

The network *is* a Hugging Face ``AutoModelForSequenceClassification`` (for Llama:
``LlamaForSequenceClassification``) with ``num_labels`` = number of ensemble heads, so a saved
reward model loads in plain transformers and gives the same scores:

    AutoModelForSequenceClassification.from_pretrained("runs/rm")(**tok(texts)).logits  # (B, H)

What we do differently from calling that model directly (speed, not maths):
- the head is applied only to the hidden states we read (2 rows per pair), never to every token
  and never through the 49k-word LM head;
- the last token is found from the attention mask, so a pad token that equals EOS is harmless;
- ``rewards`` runs rows of segments, e.g. [prompt, chosen, rejected] as one row, so the prompt
  is computed once (see ``rlhfkit/packing.py``);
- with frozen lower layers, those run without autograd, and the last layer runs only at the read
  positions (``rlhfkit/models/readout.py``; the same values as the plain forward).

Ensembles: ``n_heads`` > 1 gives N linear heads on one shared backbone (cheap; their spread
only measures head disagreement, as the backbone is shared). ``RewardEnsemble`` combines N
separately trained models. Both report the mean reward and the disagreement (standard
deviation over members) of each pair's reward margin.

LoRA (peft) is optional; it is merged into the backbone on save, so the saved folder is a plain
transformers model with no peft dependency.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

META_FILE = "rlhfkit_reward.json"


class RewardModel(nn.Module):
    """Wraps a ``*ForSequenceClassification`` model; ``forward`` returns rewards (B, H)."""

    def __init__(self, net, tokenizer=None, meta: dict | None = None):
        super().__init__()
        self.net = net
        self.tokenizer = tokenizer
        self.meta = dict(meta or {})

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_backbone(cls, name_or_path, n_heads: int = 1, dtype: str = "fp32", seed: int = 0):
        """A new reward model: pretrained causal-LM weights, freshly initialised head(s)."""
        from transformers import AutoModelForSequenceClassification

        from rlhfkit.models import load_tokenizer, resolve_model_dir, torch_dtype

        folder = resolve_model_dir(name_or_path)
        tokenizer = load_tokenizer(folder)
        torch.manual_seed(seed)
        net = AutoModelForSequenceClassification.from_pretrained(
            folder, num_labels=n_heads, dtype=torch_dtype(dtype)
        )
        net.config.pad_token_id = tokenizer.pad_token_id
        net.config.problem_type = "regression"
        return cls(net, tokenizer, {"backbone": str(name_or_path), "n_heads": n_heads})

    @classmethod
    def load(cls, path, dtype: str = "fp32"):
        """A reward model saved by ``save`` (or any sequence-classification folder)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from rlhfkit.models import prepare_tokenizer, torch_dtype

        path = Path(path)
        net = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch_dtype(dtype))
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path))
        meta = json.loads((path / META_FILE).read_text()) if (path / META_FILE).exists() else {}
        return cls(net.eval(), tokenizer, meta)

    def add_lora(self, r: int = 16, alpha: int = 32, dropout: float = 0.0):
        """Wrap the backbone with LoRA adapters on all linear projections; the head stays trainable."""
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, task_type="SEQ_CLS",
                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                            "gate_proj", "up_proj", "down_proj"])
        self.net = get_peft_model(self.net, config)
        self.meta["lora"] = {"r": r, "alpha": alpha}
        return self

    def save(self, out, extra_meta: dict | None = None, state_dict: dict | None = None) -> Path:
        """Write a transformers-loadable folder (LoRA merged) plus our metadata, atomically.
        ``state_dict``: this module's full weights when its own are sharded (gathered by FSDP)."""
        from rlhfkit.data.atomic import atomic_dir

        out = Path(out)
        net_weights = {k.removeprefix("net."): v for k, v in state_dict.items()} if state_dict is not None else None
        with atomic_dir(out) as tmp:
            self.plain_net().save_pretrained(tmp, **({"state_dict": net_weights} if net_weights is not None else {}))
            if self.tokenizer is not None:
                self.tokenizer.save_pretrained(tmp)
            meta = {**self.meta, **(extra_meta or {})}
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        return out

    def plain_net(self):
        """The sequence-classification model with any LoRA merged in (a copy when merging)."""
        if hasattr(self.net, "merge_and_unload"):
            import copy

            return copy.deepcopy(self.net).merge_and_unload()
        return self.net

    # -- parts ----------------------------------------------------------------------------------
    @property
    def backbone(self) -> nn.Module:
        """The decoder stack without any head (LlamaModel for Llama)."""
        net = self.net.get_base_model() if hasattr(self.net, "get_base_model") else self.net
        return getattr(net, net.base_model_prefix)

    @property
    def head(self) -> nn.Module:
        net = self.net.get_base_model() if hasattr(self.net, "get_base_model") else self.net
        return net.score

    @property
    def n_heads(self) -> int:
        return self.head.out_features

    # -- forward --------------------------------------------------------------------------------
    def _hidden(self, input_ids, attention_mask, position_ids=None) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            position_ids=position_ids, use_cache=False)
        return out.last_hidden_state  # (B, T, D)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                last_index: torch.Tensor | None = None) -> torch.Tensor:
        """Rewards (B, H) of right- or left-padded rows, read at each row's last real token."""
        hidden = self._hidden(input_ids, attention_mask)  # (B, T, D)
        if last_index is None:
            # rightmost attended position works for right and left padding alike
            positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
            last_index = (positions * attention_mask).argmax(dim=1)  # (B,)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        out = self.head(hidden[rows, last_index])  # (B, H)
        return out.to(torch.promote_types(out.dtype, torch.float32))  # fp32, or fp64 for an fp64 model

    def rewards(self, batch, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(S, H) rewards of every scored segment of a ``PackedBatch`` (``rlhfkit.packing``),
        read at the segment's last token, in output-sequence order.

        The batch is moved to the model's device and bf16 autocast runs on that device's type.
        """
        from rlhfkit.models.logprobs import autocast_context, model_device
        from rlhfkit.models.readout import read_hidden_states

        device = model_device(self)
        batch = batch.to(device)
        with autocast_context(dtype, device):
            # the frozen prefix without autograd, the last layer only where it is read
            picked = read_hidden_states(self.backbone, batch, batch.last_index, dtype)  # (S, D)
            out = self.head(picked)  # (S, H)
            # bf16 -> fp32 for the losses; an fp64 model (exactness tests) keeps fp64
            return out.to(torch.promote_types(out.dtype, torch.float32))

    def group_rewards(self, batch, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(B, G, H) rewards of a batch of groups made by ``collate_groups`` (a K-wise ranking is a
        group of K): ``[b, g]`` is completion g of group b, read at its last token; slots past a
        group's own size (groups of different K in one batch) hold 0."""
        return by_group(self.rewards(batch, dtype), batch)

    def pair_rewards(self, batch, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen (B, H), rejected (B, H)) from a batch of pairs made by ``collate_pairs``."""
        rewards = self.rewards(batch, dtype)  # (2B, H)
        half = rewards.shape[0] // 2
        return rewards[:half], rewards[half:]


def by_group(rewards: torch.Tensor, batch) -> torch.Tensor:
    """(S, H) per-completion rewards -> (B, G, H) by ``batch.group_slots`` (``collate_groups``);
    slots past a group's own size hold 0."""
    slots = batch.group_slots.to(rewards.device)  # (B, G)
    picked = rewards.index_select(0, slots.clamp(min=0).flatten()).view(*slots.shape, -1)  # (B, G, H)
    return picked * (slots >= 0).unsqueeze(-1)


def ensemble_summary(chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean reward and disagreement per pair from member rewards of shape (B, N).

    disagreement = standard deviation over the N members of the margin r_c - r_r (population
    std, 0 for a single member): large where members disagree on which answer is better.
    """
    margins = chosen - rejected  # (B, N)
    return {
        "chosen_reward": chosen.mean(dim=1),
        "rejected_reward": rejected.mean(dim=1),
        "margin": margins.mean(dim=1),
        "disagreement": margins.std(dim=1, unbiased=False),
    }


class RewardEnsemble:
    """N separately trained reward models scored together: member rewards stacked to (B, N)."""

    def __init__(self, members: list[RewardModel]):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = members

    @torch.no_grad()
    def group_rewards(self, batch, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(B, G, H) rewards of a batch of groups made by ``collate_groups`` (a K-wise ranking is a
        group of K): ``[b, g]`` is completion g of group b, read at its last token; slots past a
        group's own size (groups of different K in one batch) hold 0."""
        return torch.cat([m.group_rewards(batch, dtype) for m in self.members], dim=-1)  # members stacked on H

    def pair_rewards(self, batch, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m.pair_rewards(batch, dtype) for m in self.members]
        return torch.cat([c for c, _ in outs], dim=1), torch.cat([r for _, r in outs], dim=1)


def score_pairs(model, tokenized, batch_size: int = 16, packed: bool = True, dtype: str = "fp32"):
    """(chosen (N, H), rejected (N, H)) rewards of tokenised pairs (``rlhfkit.packing``), in input
    order, on the model's device (bf16 autocast there when ``dtype`` is bf16)."""
    from rlhfkit.packing import collate_pairs

    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    pad = model.tokenizer.pad_token_id
    order = sorted(range(len(tokenized)), key=lambda i: tokenized[i].packed_len)  # little padding
    chosen, rejected = [None] * len(tokenized), [None] * len(tokenized)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            c, r = model.pair_rewards(collate_pairs([tokenized[i] for i in idx], pad, packed), torch_dtype)
            for j, i in enumerate(idx):
                chosen[i], rejected[i] = c[j].cpu(), r[j].cpu()
    model.train(was_training)
    return torch.stack(chosen), torch.stack(rejected)
