import time

import pytest
import torch

from rlhfkit.models import ModelSourceError, load_causal_lm, resolve_model_dir, tiny_causal_lm
from rlhfkit.models.sources import alias_path, convert_gguf, load_gguf


def test_tiny_model_is_small_and_fast(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir)
    assert len(tok) == 259 and model.config.vocab_size == 259
    assert sum(p.numel() for p in model.parameters()) < 200_000
    ids = tok(["hello"], return_tensors="pt")
    assert model(**ids).logits.shape == (1, 5, 259)


def test_tiny_tokenizer_round_trips_text_and_has_chat_template():
    _, tok = tiny_causal_lm()
    text = "héllo, wörld! <b>ok</b>"
    assert tok.decode(tok(text).input_ids) == text
    rendered = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_bf16_load(tiny_model_dir):
    model, _ = load_causal_lm(tiny_model_dir, dtype="bf16")
    assert next(model.parameters()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="fp32 or bf16"):
        load_causal_lm(tiny_model_dir, dtype="fp16x")


def test_hub_id_offline_fails_fast_with_advice(monkeypatch):
    t0 = time.perf_counter()
    with pytest.raises(ModelSourceError) as err:
        resolve_model_dir("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert time.perf_counter() - t0 < 10
    msg = str(err.value)
    assert "no model hub is reachable" in msg and "local" in msg and "smollm2-135m" in msg


def test_unknown_local_path_is_explained(tmp_path):
    with pytest.raises(ModelSourceError, match="no model at"):
        resolve_model_dir(str(tmp_path / "missing-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match="no config.json"):
        resolve_model_dir(tmp_path / "empty")


@pytest.fixture(scope="module")
def smollm2_gguf():
    try:
        return alias_path("smollm2-135m")
    except ModelSourceError as err:
        pytest.skip(str(err))


def test_gguf_conversion_matches_gguf_logits_and_trains(smollm2_gguf, tmp_path, monkeypatch):
    """The cached safetensors copy gives the same logits as the GGUF, loads fast, and trains."""
    monkeypatch.setenv("RLHFKIT_CACHE", str(tmp_path))
    folder = convert_gguf(smollm2_gguf)
    assert (folder / "model.safetensors").exists() and folder.is_relative_to(tmp_path)
    assert resolve_model_dir(smollm2_gguf) == folder  # cached: no second conversion
    converted, tok = load_causal_lm(smollm2_gguf)
    reference, _ = load_gguf(smollm2_gguf)
    ids = tok(["The capital of France is"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(converted(**ids).logits, reference(**ids).logits)
    # No quantisation marker left: a full fine-tuning step is allowed and changes weights.
    assert getattr(converted, "hf_quantizer", None) is None
    converted.train()
    loss = converted(**ids, labels=ids["input_ids"]).loss
    loss.backward()
    before = converted.model.norm.weight.detach().clone()
    torch.optim.SGD(converted.parameters(), lr=1e-3).step()
    assert not torch.equal(before, converted.model.norm.weight)
