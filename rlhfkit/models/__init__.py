"""Loading policies, reference models and reward-model backbones from any model source."""

from rlhfkit.models.loading import DTYPES, load_causal_lm, load_tokenizer, prepare_tokenizer, torch_dtype
from rlhfkit.models.sources import (
    ALIASES,
    ModelSourceError,
    cache_root,
    convert_gguf,
    resolve_model_dir,
)
from rlhfkit.models.tiny import byte_tokenizer, save_tiny, tiny_causal_lm

__all__ = [
    "ALIASES",
    "DTYPES",
    "ModelSourceError",
    "byte_tokenizer",
    "cache_root",
    "convert_gguf",
    "load_causal_lm",
    "load_tokenizer",
    "prepare_tokenizer",
    "resolve_model_dir",
    "save_tiny",
    "tiny_causal_lm",
    "torch_dtype",
]
