"""Load causal LMs (policies, reference models) with their tokenizers from any model source."""

from __future__ import annotations

from pathlib import Path

from rlhfkit.models.sources import resolve_model_dir

DTYPES = ("fp32", "bf16")


def torch_dtype(name: str):
    import torch

    table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "bfloat16": torch.bfloat16}
    if name not in table:
        raise ValueError(f"unknown dtype {name!r}; choose fp32 or bf16")
    return table[name]


def prepare_tokenizer(tokenizer):
    """A pad token is needed for batching; reuse EOS where the tokenizer has none."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(name_or_path: str | Path):
    from transformers import AutoTokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(resolve_model_dir(name_or_path)))


def load_causal_lm(name_or_path: str | Path, dtype: str = "fp32"):
    """(model, tokenizer) in eval mode, weights in ``dtype`` ("fp32" or "bf16")."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model_dir(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype(dtype))
    model.eval()
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(folder))
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
