from rlhfkit.models import load_causal_lm
from rlhfkit.rollout.generate import GenerationStats, SamplingConfig, generate_items
from rlhfkit.rollout.prompts import PromptRecord, hh_to_messages, prompt_to_messages, render_prompt
from rlhfkit.schema import Message


def test_generate_k_samples_per_prompt_with_provenance(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir)
    prompts = [PromptRecord("a", "hello"), PromptRecord("b", [Message(role="user", content="hi there")]),
               PromptRecord("c", "third")]
    cfg = SamplingConfig(n=3, max_new_tokens=8, batch_size=2, seed=1, temperature=1.0)
    stats = GenerationStats()
    items = generate_items(model, tok, prompts, cfg, model_name="tiny", stats=stats)
    assert [i.metadata["prompt_id"] for i in items] == ["a", "b", "c"]
    for item in items:
        assert len(item.responses) == 3
        prov = item.responses[0].provenance
        assert prov.model == "tiny" and prov.sampling["temperature"] == 1.0 and prov.created_at
    assert stats.prompts == 3 and stats.responses == 9 and stats.new_tokens > 0
    # Same seed, same samples: runs are reproducible.
    again = generate_items(model, tok, prompts, cfg, model_name="tiny")
    assert [[r.text for r in i.responses] for i in again] == [[r.text for r in i.responses] for i in items]


def test_hh_transcript_becomes_chat_messages():
    t = "\n\nHuman: Hi?\n\nAssistant: Hello.\n\nHuman: How are you?\n\nAssistant:"
    assert [(m.role, m.content) for m in hh_to_messages(t)] == [
        ("user", "Hi?"), ("assistant", "Hello."), ("user", "How are you?")]
    assert prompt_to_messages("plain")[0].role == "user"


def test_render_prompt_uses_chat_template(tiny_model_dir):
    _, tok = load_causal_lm(tiny_model_dir)
    assert render_prompt(tok, "hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_generate_uses_the_torch_sampler_and_counts_tokens_without_eos(tiny_model_dir, monkeypatch):
    model, tok = load_causal_lm(tiny_model_dir)
    monkeypatch.setattr(model, "generate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("HF generate")))
    cfg = SamplingConfig(n=2, max_new_tokens=5, batch_size=2, seed=3, temperature=1.0)
    stats = GenerationStats()
    items = generate_items(model, tok, [PromptRecord("a", "hello")], cfg, model_name="tiny", stats=stats)
    assert len(items) == 1 and all(0 < n <= 5 for n in stats.token_counts)
