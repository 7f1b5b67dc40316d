"""Load causal LMs (policies, reference models) with their tokenizers from any model source."""

from __future__ import annotations

from pathlib import Path

from rlhfkit.models.sources import resolve_model_dir

DTYPES = ("fp32", "bf16", "auto")


def native_bf16() -> bool:
    """Whether bf16 matmuls run natively here. On CPUs without AVX512-BF16 or AMX, torch
    emulates bf16 and it is many times slower than fp32 (measured: generation fell from ~26 to
    ~5 tok/s on an AVX2-only EPYC), so "auto" picks fp32 there."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = open("/proc/cpuinfo", encoding="ascii", errors="ignore").read()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def resolve_dtype_name(name: str) -> str:
    """"auto" -> "bf16" where bf16 is native, else "fp32"; other names pass through."""
    if name == "auto":
        return "bf16" if native_bf16() else "fp32"
    return name


def torch_dtype(name: str):
    import torch

    name = resolve_dtype_name(name)
    table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "bfloat16": torch.bfloat16}
    if name not in table:
        raise ValueError(f"unknown dtype {name!r}; choose fp32, bf16 or auto")
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
