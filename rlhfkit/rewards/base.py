"""The reward-function interface of the online-RL trainers, and ``load_reward`` to build one.

A reward function is any callable

    reward_fn(prompts: list[str | list[dict]], completions: list[str], **metadata) -> list[float]

- ``prompts[i]`` is the i-th prompt as the prompt set holds it: plain text, or chat messages
  ({"role", "content"} dicts or ``schema.Message``); for G samples of one prompt it is repeated.
- ``completions[i]`` is the policy's text for ``prompts[i]``, without the prompt or EOS.
- ``metadata`` holds per-sample fields, each a list aligned with ``completions`` (e.g.
  ``answer`` for exact match, ``tests`` for code); a function ignores fields it does not use.
- It returns one float per completion. A bad completion (unparsable, crashing code, empty)
  gets a low reward (the shipped rules give 0.0), never an exception; a configuration
  error (unknown rule, missing metadata field) raises ValueError with the spec named.

``load_reward(spec)`` accepts:
- a reward-model folder (has config.json, e.g. ``runs/rm``): ``model_reward.ModelReward``;
- ``"module:function"``: a rule imported by name, e.g. ``"rlhfkit.rewards.rules:numeric_exact_match"``;
- a callable, used as is;
- a list of ``{"source": spec, "weight": w, "kwargs": {...}}`` dicts (as a YAML recipe gives
  them; weight defaults to 1, kwargs are bound to a rule with functools.partial): the
  weighted sum  r = sum_k w_k r_k.

Per-batch normalisation, applied after the weighted sum, over the whole batch passed in:
- "none": r unchanged;
- "center": r - mean(r);
- "whiten": (r - mean(r)) / (std(r) + eps), population std (a batch of one, or of equal
  rewards, becomes all zeros).
"""

from __future__ import annotations

import functools
import importlib
import math
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

NORMALIZATIONS = ("none", "center", "whiten")


class RewardFunction(Protocol):
    """The interface above; any plain function with this signature qualifies."""

    def __call__(self, prompts: list[str | list[dict]], completions: list[str], **metadata) -> list[float]: ...


def normalize_rewards(rewards: Sequence[float], mode: str = "none", eps: float = 1e-8) -> list[float]:
    """Per-batch normalisation of rewards (rule in the module docstring)."""
    if mode not in NORMALIZATIONS:
        raise ValueError(f"reward normalisation must be one of {NORMALIZATIONS}, got {mode!r}")
    rewards = [float(r) for r in rewards]
    if mode == "none" or not rewards:
        return rewards
    mean = sum(rewards) / len(rewards)
    centred = [r - mean for r in rewards]
    if mode == "center":
        return centred
    std = math.sqrt(sum(c * c for c in centred) / len(centred))
    return [c / (std + eps) for c in centred]


def import_rule(spec: str) -> Callable:
    """The callable named by ``"package.module:function"`` (dotted attribute paths allowed)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"reward {spec!r}: a rule is named 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"reward {spec!r}: cannot import module {module_name!r} ({err})") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"reward {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"reward {spec!r}: {attr!r} is a {type(obj).__name__}, not a callable")
    return obj


class WeightedSum:
    """r = sum_k w_k r_k over several reward functions, then per-batch normalisation."""

    def __init__(self, parts: list[tuple[Callable, float, str]], normalize: str = "none"):
        if not parts:
            raise ValueError("a weighted reward needs at least one source")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"reward normalisation must be one of {NORMALIZATIONS}, got {normalize!r}")
        self.parts, self.normalize = parts, normalize

    def __call__(self, prompts: list, completions: list[str], **metadata) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        total = [0.0] * len(completions)
        for fn, weight, name in self.parts:
            scores = fn(list(prompts), list(completions), **metadata)
            if scores is None or len(scores) != len(completions):
                got = "None" if scores is None else f"{len(scores)} values"
                raise ValueError(f"reward {name!r} returned {got} for {len(completions)} completions")
            total = [t + weight * float(s) for t, s in zip(total, scores)]
        return normalize_rewards(total, self.normalize)


def _single(spec: Any, model_options: dict) -> tuple[Callable, str]:
    if callable(spec):
        return spec, getattr(spec, "__name__", repr(spec))
    if isinstance(spec, Path) or isinstance(spec, str):
        text = str(spec)
        path = Path(text).expanduser()
        if path.is_dir():
            if not (path / "config.json").exists():
                raise ValueError(f"reward {text!r}: the folder has no config.json, so it is not a reward model")
            from rlhfkit.rewards.model_reward import ModelReward

            return ModelReward.load(path, **model_options), text
        if ":" in text:
            return import_rule(text), text
        raise ValueError(f"reward {text!r}: neither a reward-model folder (with config.json) nor 'module:function'")
    raise ValueError(f"reward source {spec!r}: expected a folder, 'module:function' or a callable")


def load_reward(spec: Any, normalize: str = "none", **model_options) -> RewardFunction:
    """A reward function from ``spec`` (forms in the module docstring); ``model_options``
    (device, dtype, max_length, batch_size) go to ``ModelReward.load`` for model folders."""
    entries = spec if isinstance(spec, (list, tuple)) else [{"source": spec, "weight": 1.0}]
    parts = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            entry = {"source": entry}
        unknown = set(entry) - {"source", "weight", "kwargs"}
        if unknown or "source" not in entry:
            raise ValueError(f"reward entry {n}: expected keys source, weight, kwargs; got {sorted(entry)}")
        weight = entry.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ValueError(f"reward entry {n} ({entry['source']!r}): weight must be a finite number, got {weight!r}")
        fn, name = _single(entry["source"], model_options)
        kwargs = entry.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ValueError(f"reward entry {n} ({name!r}): kwargs must be a mapping, got {kwargs!r}")
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        parts.append((fn, float(weight), name))
    return WeightedSum(parts, normalize)
