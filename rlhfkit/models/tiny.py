"""Tiny randomly initialised Llama models for tests that must run in seconds.

With SmolLM2's 49k-token vocabulary even a 3M-parameter model spends most of a training step
in the embedding and LM head, so the default here is a byte-level tokenizer of 256 byte
tokens plus 3 special tokens, with the same ChatML template SmolLM2 uses.
"""

from __future__ import annotations

from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<|im_start|>", "<|im_end|>"]


def byte_tokenizer():
    """A byte-level BPE tokenizer with no merges: 256 byte tokens + pad, im_start, im_end."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    alphabet = ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_causal_lm(vocab: str = "bytes", layers: int = 2, hidden: int = 64, heads: int = 4,
                   kv_heads: int = 2, seed: int = 0, max_positions: int = 1024):
    """(model, tokenizer): a random LlamaForCausalLM in fp32, eval mode.

    ``vocab="bytes"`` uses ``byte_tokenizer()`` (259 tokens); ``vocab="smollm2"`` uses the
    embedded SmolLM2 tokenizer (49,152 tokens; realistic, slower).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if vocab == "bytes":
        tokenizer = byte_tokenizer()
    elif vocab == "smollm2":
        from rlhfkit.models.loading import load_tokenizer

        tokenizer = load_tokenizer("smollm2-135m")
    else:
        raise ValueError(f"unknown tiny vocabulary {vocab!r}; choose 'bytes' or 'smollm2'")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


def save_tiny(path: str | Path, **kwargs) -> Path:
    """Write a tiny model and its tokenizer as a Hugging Face folder (for CLI tests)."""
    model, tokenizer = tiny_causal_lm(**kwargs)
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
