"""What every online-RL trainer shares: the rollout buffer and the phases around the update.

One optimiser step of an online trainer (``loop.fit`` runs them):

1. rollout     - every ``ppo_epochs`` steps: the next ``batch_size * grad_accum`` prompts (a seeded
                 order per epoch) are sampled ``group_size`` times each by ``rollout.TorchSampler``,
                 which also returns the sampling policy's per-token log-probs ("old" log-probs, no
                 extra forward pass);
2. score       - the reward function scores the completions (``rewards.load_reward``); the
                 reference model's per-token log-probs come from one packed forward per group,
                 ``[prompt | c1 | ... | cG]`` (``rlhfkit.packing``), so the prompt is computed once;
3. advantages  - the algorithm's (``OnlineTrainer.advantages``): group baselines (GRPO, RLOO), GAE
                 on a value head (PPO), or top-k selection (RAFT); with ``kl_placement="reward"``
                 the KL estimate is subtracted from the reward first;
4. loss        - per micro-batch of groups: the policy's log-probs from the same packed forward,
                 then the algorithm's pure loss (``rlhfkit.losses.policy``), with the KL anchor per
                 token when ``kl_placement="loss"``;
5. step / log  - by the loop; metrics per step: reward, KL to the reference (k1 per sequence, an
                 unbiased estimate), entropy (Monte-Carlo: minus the mean log-prob of the sampled
                 tokens), response length, clip fraction; completions go to ``samples/``.

Log-probs of both the policy and the reference use ``softmax(logits / temperature)``, the
distribution the sampler draws from (as TRL does), so importance ratios start at 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from rlhfkit.losses.kl import kl_estimator
from rlhfkit.models.logprobs import completion_logps
from rlhfkit.packing import PackedBatch, Segment, collate_rows, per_sequence
from rlhfkit.trainers import loop
from rlhfkit.trainers.config import RLConfig


@dataclass
class PromptSet:
    """Tokenised prompts with what the reward needs about them."""

    prompts: list  # as given (text or chat messages): what the reward function sees
    prompt_ids: list[list[int]]
    metadata: list[dict]  # per prompt: extra fields of its JSONL record (e.g. "answer")


def read_prompt_set(path: str | Path, tokenizer, max_length: int) -> PromptSet:
    """Prompts from ``path`` (see ``rollout.prompts.read_prompts``), chat-rendered and tokenised,
    keeping the left end of over-long prompts off (the question is at the end)."""
    from rlhfkit.rollout.prompts import read_prompts

    records = read_prompts(path)
    extra: dict[str, dict] = {}
    if Path(path).suffix == ".jsonl":
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                if isinstance(rec, dict) and "id" in rec:
                    extra[str(rec["id"])] = {k: v for k, v in rec.items() if k not in ("id", "prompt")}
    return prompt_set([r.prompt for r in records], tokenizer, max_length, [extra.get(r.id, {}) for r in records])


def prompt_set(prompts: list, tokenizer, max_length: int, metadata: list[dict] | None = None) -> PromptSet:
    from rlhfkit.rollout.prompts import prompt_to_messages

    ids = []
    for p in prompts:
        messages = [m if isinstance(m, dict) else m.model_dump() for m in prompt_to_messages(p)]
        if getattr(tokenizer, "chat_template", None):
            row = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                     return_dict=True)["input_ids"])
        else:
            row = list(tokenizer(p if isinstance(p, str) else "\n".join(m["content"] for m in messages))["input_ids"])
        ids.append(row[-max_length:])
    return PromptSet(list(prompts), ids, metadata or [{} for _ in prompts])


class OnlineTrainer:
    """The shared phases; an algorithm subclass provides ``advantages`` and ``policy_loss``."""

    name = "online"
    default_kl_placement = "loss"

    def __init__(self, policy, tokenizer, cfg: RLConfig, reward_fn, prompts: PromptSet,
                 out_dir: str | Path | None = None):
        from rlhfkit.models.loading import resolve_dtype_name
        from rlhfkit.rollout.sampler import SamplingParams, TorchSampler

        self.cfg = cfg.validate()
        cfg.algo = self.name
        if cfg.kl_placement == "auto":
            cfg.kl_placement = self.default_kl_placement
        if cfg.kl_estimator == "auto":
            cfg.kl_estimator = "k3" if cfg.kl_placement == "loss" else "k1"
        if cfg.lora_r:
            raise ValueError("online RL with LoRA is not built yet: use lora_r 0 (full fine-tuning)")
        cfg.dtype = resolve_dtype_name(cfg.dtype)
        self.dtype = torch.bfloat16 if cfg.dtype == "bf16" else torch.float32
        loop.seed_everything(cfg.seed)
        self.policy, self.tokenizer, self.reward_fn, self.prompts = policy, tokenizer, reward_fn, prompts
        self.out = Path(out_dir) if out_dir else None
        if not prompts.prompt_ids:
            raise ValueError("no prompts to train on")
        self.reference = self._frozen_copy(policy)
        self.sampler = TorchSampler(policy, tokenizer)
        self.params = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                                     top_p=cfg.top_p, top_k=cfg.top_k)
        self.model = self.trainable_module()
        self.buffer: dict | None = None
        self.step = 0
        self.history: list[dict] = []

    # ---- set-up hooks
    @staticmethod
    def _frozen_copy(model):
        import copy

        ref = copy.deepcopy(model).eval()
        ref.requires_grad_(False)
        return ref

    def trainable_module(self) -> torch.nn.Module:
        """What the optimiser trains (PPO adds a value head)."""
        return self.policy

    def setup(self) -> "OnlineTrainer":
        return self

    # ---- schedule
    @property
    def prompts_per_rollout(self) -> int:
        return self.cfg.global_batch

    def total_steps(self) -> int:
        if self.cfg.max_steps:
            return self.cfg.max_steps
        rollouts = math.ceil(self.cfg.epochs * math.ceil(len(self.prompts.prompt_ids) / self.prompts_per_rollout))
        return max(1, rollouts) * self.cfg.ppo_epochs

    def prompts_for_rollout(self, k: int) -> list[int]:
        """The prompt indices of rollout ``k``: consecutive slices of a seeded order per epoch."""
        n, size = len(self.prompts.prompt_ids), self.prompts_per_rollout
        out = []
        start = k * size
        while len(out) < size:
            epoch, offset = divmod(start + len(out), n)
            g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=g).tolist()
            out += order[offset : offset + size - len(out)]
        return out

    def batch_for_step(self, step: int) -> list[int]:
        k = step // self.cfg.ppo_epochs
        if self.buffer is None or self.buffer["rollout"] != k:
            self.buffer = self.make_rollout(k)
        return list(range(len(self.buffer["prompt_index"])))

    # ---- phases 1-3: rollout -> score -> advantages
    @torch.no_grad()
    def make_rollout(self, k: int) -> dict:
        cfg, G = self.cfg, self.cfg.group_size
        index = self.prompts_for_rollout(k)
        batch = self.sampler.sample([self.prompts.prompt_ids[i] for i in index], G, self.params,
                                    seed=cfg.seed * 1_000_003 + 7919 * k + 1)  # rollout
        mask = batch.completion_mask
        completion_ids = [row[m].tolist() for row, m in zip(batch.completion_ids, mask)]
        prompts = [self.prompts.prompts[i] for i in index for _ in range(G)]
        metadata = self._metadata(index, G)
        score = torch.tensor(self.reward_fn(prompts, batch.texts, **metadata), dtype=torch.float32)  # score
        buffer = {"rollout": k, "prompt_index": index, "completion_ids": completion_ids,
                  "mask": mask, "old_logp": batch.logprobs.float(), "score": score, "texts": batch.texts}
        buffer["ref_logp"] = self.sequence_token_logps(self.reference, buffer, range(len(index)))
        k1 = kl_estimator("k1")(buffer["old_logp"], buffer["ref_logp"]) * mask  # (S, T)
        buffer["seq_kl"] = k1.sum(-1)  # unbiased estimate of KL(pi || ref) per sequence
        buffer["reward"] = score - cfg.kl_coef * buffer["seq_kl"] if cfg.kl_placement == "reward" else score
        buffer.update(self.advantages(buffer))  # advantages
        lengths = mask.sum(-1).float()
        buffer["metrics"] = {
            "reward/mean": score.mean().item(), "reward/std": score.std().item() if len(score) > 1 else 0.0,
            "kl/mean": buffer["seq_kl"].mean().item(),
            "entropy": (-(buffer["old_logp"] * mask).sum() / mask.sum()).item(),
            "response_length/mean": lengths.mean().item(),
        }
        return buffer

    def _metadata(self, index: list[int], G: int) -> dict[str, list]:
        keys = sorted({key for i in index for key in self.prompts.metadata[i]})
        return {key: [self.prompts.metadata[i].get(key) for i in index for _ in range(G)] for key in keys}

    def rows(self, buffer: dict, groups) -> PackedBatch:
        """One packed row per group, ``[prompt | c1 | ... | cG]``; output sequence j*G+g is
        completion g of the j-th group listed (the buffer's prompt-major order)."""
        G, rows = self.cfg.group_size, []
        for j, b in enumerate(groups):
            prompt = self.prompts.prompt_ids[buffer["prompt_index"][b]]
            rows.append([Segment(prompt)] + [Segment(buffer["completion_ids"][b * G + g], 0, j * G + g)
                                             for g in range(G)])
        return collate_rows(rows, self.tokenizer.pad_token_id, len(rows) * G)

    def sequence_token_logps(self, model, buffer: dict, groups, return_hidden: bool = False):
        """(S, T) per-token log-probs of the groups' completions under ``model`` (T = the rollout's)."""
        packed = self.rows(buffer, list(groups))
        _, per_token, *hidden = completion_logps(model, packed, self.dtype, return_tokens=True,
                                                 temperature=self.cfg.temperature, return_hidden=return_hidden)
        width = buffer["mask"].shape[1]
        logp = per_sequence(per_token, packed, width)
        return (logp, hidden[0], packed) if return_hidden else logp

    def seq_rows(self, groups) -> list[int]:
        G = self.cfg.group_size
        return [b * G + g for b in groups for g in range(G)]

    # ---- phase 4: loss
    def micro_batches(self, indices: list[int]) -> list[tuple]:
        out = []
        for start in range(0, len(indices), self.cfg.batch_size):
            groups = indices[start : start + self.cfg.batch_size]
            out.append((groups, self.micro_weight(groups)))
        return out

    def micro_weight(self, groups) -> float:
        """What the loss of a micro-batch averages over, so accumulation is exact."""
        rows = self.seq_rows(groups)
        if self.cfg.aggregation == "token_mean":
            return float(self.buffer["mask"][rows].sum())
        return float(len(rows))

    def loss(self, groups) -> tuple[torch.Tensor, dict]:
        logp = self.sequence_token_logps(self.policy, self.buffer, groups)  # forward
        rows = self.seq_rows(groups)
        return self.policy_loss(logp, rows)

    # ---- algorithm hooks
    def advantages(self, buffer: dict) -> dict:
        raise TypeError(f"{type(self).__name__} must define advantages()")

    def policy_loss(self, logp: torch.Tensor, rows: list[int]) -> tuple[torch.Tensor, dict]:
        raise TypeError(f"{type(self).__name__} must define policy_loss()")

    def kl_in_loss(self) -> tuple[float, torch.Tensor | None]:
        return (self.cfg.kl_coef, None) if self.cfg.kl_placement == "loss" else (0.0, None)

    # ---- phase 5: log, state, save
    def after_step(self, record: dict) -> None:
        record.update(self.buffer["metrics"])
        record["rollout"] = self.buffer["rollout"]
        if self.out and self._samples_due(record["step"]) and loop.is_main_process():
            self.write_samples(record["step"])
        if self.out and self.cfg.save_policy_every and record["step"] % self.cfg.save_policy_every == 0:
            loop.save_hf_folder(self.policy, self.tokenizer, self.out / "checkpoints" / f"step-{record['step']}")

    def _samples_due(self, step: int) -> bool:
        """The first step on a rollout, every ``sample_every`` rollouts."""
        first_use = (step - 1) % self.cfg.ppo_epochs == 0
        return bool(first_use and self.cfg.sample_every and self.buffer["rollout"] % self.cfg.sample_every == 0)

    def sample_records(self, step: int) -> list[dict]:
        """The rollout's completions: one record per sample (prompt, completion, reward, KL)."""
        buffer, G, out = self.buffer, self.cfg.group_size, []
        for s, text in enumerate(buffer["texts"]):
            prompt = self.prompts.prompts[buffer["prompt_index"][s // G]]
            prompt = prompt if isinstance(prompt, str) else [m if isinstance(m, dict) else m.model_dump() for m in prompt]
            out.append({"step": step, "prompt": prompt, "completion": text,
                        "reward": float(buffer["score"][s]), "kl": float(buffer["seq_kl"][s])})
        return out

    def write_samples(self, step: int) -> None:
        from rlhfkit.data.atomic import atomic_write

        with atomic_write(self.out / "samples" / f"step-{step:06d}.jsonl") as fh:
            for record in self.sample_records(step):
                fh.write(json.dumps(record) + "\n")

    def tables(self, record: dict) -> dict:
        """For the experiment tracker: the completions table, on the steps samples/ gets one."""
        if not self._samples_due(record["step"]):
            return {}
        columns = ["step", "prompt", "completion", "reward", "kl"]
        rows = [[r["step"], r["prompt"] if isinstance(r["prompt"], str) else json.dumps(r["prompt"]),
                 r["completion"], r["reward"], r["kl"]] for r in self.sample_records(record["step"])]
        return {"completions": (columns, rows)}

    def state_dict(self) -> dict:
        return {"buffer": self.buffer}

    def load_state_dict(self, state: dict) -> None:
        self.buffer = state.get("buffer")

    def train(self, stop_after: int | None = None) -> list[dict]:
        return loop.fit(self, self.out, stop_after, f"{self.cfg.algo} ({self.cfg.dtype})")

    def save(self, out: str | Path | None = None) -> Path:
        folder = loop.save_hf_folder(self.policy, self.tokenizer, Path(out) if out else self.out)
        loop.write_config(folder, "rlhfkit_rl_config.json", self.cfg)
        return folder
