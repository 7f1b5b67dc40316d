"""The accelerate configs shipped in configs/accelerate/ parse with accelerate's own loader (which
refuses unknown keys) and say what their names promise; an FSDP launch turns on the loop's own
sharding (tests/trainers/test_distributed.py runs it), a DeepSpeed launch is refused by name
instead of silently running as plain data parallelism, and so is what the sharded path lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlhfkit.trainers import loop

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


def load(name: str):
    from accelerate.commands.config.config_args import ClusterConfig

    return ClusterConfig.from_yaml_file(str(CONFIGS / name))


def test_ddp_config():
    cfg = load("ddp.yaml")
    assert cfg.distributed_type.value == "MULTI_GPU"
    assert (cfg.num_machines, cfg.use_cpu, cfg.mixed_precision) == (1, False, "no")
    assert cfg.fsdp_config == {} and cfg.deepspeed_config == {}


def test_fsdp_config_wraps_the_decoder_layers_of_our_models():
    from rlhfkit.models import tiny_causal_lm

    cfg = load("fsdp.yaml")
    assert cfg.distributed_type.value == "FSDP"
    fsdp = cfg.fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # one HF folder at the end
    # true would make transformers load empty weights on ranks > 0 once a process group exists
    # (a second model in one run), which the loop's broadcast from rank 0 cannot fill
    assert fsdp["fsdp_cpu_ram_efficient_loading"] is False
    model, _ = tiny_causal_lm(layers=1, hidden=16, heads=2, kv_heads=1)
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == type(model.model.layers[0]).__name__


def test_zero3_config():
    cfg = load("zero3.yaml")
    assert cfg.distributed_type.value == "DEEPSPEED"
    ds = cfg.deepspeed_config
    assert ds["zero_stage"] == 3 and ds["zero3_save_16bit_model"] is True
    assert ds["gradient_accumulation_steps"] == 1  # the loop accumulates (grad_accum) itself


def test_single_process_needs_no_process_group(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "ACCELERATE_USE_FSDP"):
        monkeypatch.delenv(var, raising=False)
    assert loop.init_distributed() == 1
    assert loop.world() == (0, 1) and loop.is_main_process()


def test_deepspeed_launch_refused_by_name(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # what `accelerate launch --config_file zero3.yaml` sets
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(RuntimeError, match="accelerate DeepSpeed config.*fsdp.yaml"):
        loop.init_distributed()


def test_fsdp_is_asked_for_by_config_or_by_accelerate(monkeypatch):
    from rlhfkit.trainers.config import DPOConfig

    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert loop.sharding(DPOConfig()) == "none" and loop.sharding(DPOConfig(shard="fsdp")) == "fsdp"
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # accelerate launch --config_file fsdp.yaml
    assert loop.sharding(DPOConfig()) == "fsdp"
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: nothing to shard over
    assert loop.sharding(DPOConfig(shard="fsdp")) == "none"
    with pytest.raises(ValueError, match="unknown shard 'zero3'"):
        DPOConfig(shard="zero3").validate()


def test_what_the_sharded_path_lacks_is_refused(tmp_path):
    from types import SimpleNamespace

    from rlhfkit.trainers.config import DPOConfig, RLConfig

    online = SimpleNamespace(name="grpo", cfg=RLConfig())
    with pytest.raises(RuntimeError, match="grpo with FSDP: not built for this trainer"):
        loop._check_shardable(online, None)
    dpo = SimpleNamespace(name="dpo", supports_fsdp=True, cfg=DPOConfig(lora_r=8))
    with pytest.raises(RuntimeError, match="LoRA under FSDP"):
        loop._check_shardable(dpo, None)
    dpo.cfg = DPOConfig(save_every=10)
    with pytest.raises(RuntimeError, match="checkpoints of a sharded run"):
        loop._check_shardable(dpo, None)
    ckpt = tmp_path / "state.pt"
    ckpt.write_bytes(b"")
    dpo.cfg = DPOConfig()
    with pytest.raises(RuntimeError, match="checkpoints of a sharded run"):  # it would resume from it
        loop._check_shardable(dpo, ckpt)
    dpo.cfg = DPOConfig(resume=False)
    loop._check_shardable(dpo, ckpt)  # --no-resume: starts over, writes no checkpoint


def test_fsdp_layer_class_comes_from_accelerate_or_the_model(monkeypatch):
    """The unit class: accelerate's fsdp_transformer_layer_cls_to_wrap when given (a class the
    model lacks is named in the error, before any process group is needed), else the model's."""
    from rlhfkit.models import tiny_causal_lm

    model, _ = tiny_causal_lm(layers=1, hidden=16, heads=2, kv_heads=1)
    monkeypatch.setenv("FSDP_TRANSFORMER_CLS_TO_WRAP", "GPT2Block")
    with pytest.raises(ValueError, match="no layer of class GPT2Block in LlamaForCausalLM.*LlamaDecoderLayer"):
        loop.shard_model(model)
    monkeypatch.delenv("FSDP_TRANSFORMER_CLS_TO_WRAP")
    import torch.distributed as dist
    from torch.distributed.fsdp import FSDPModule

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        loop.shard_model(model)  # a one-rank mesh: the units are what matter here
    finally:
        dist.destroy_process_group()
    units = [name for name, m in model.named_modules() if isinstance(m, FSDPModule)]
    assert units == ["", "model.layers.0"] and loop.is_sharded(model)  # the root and each decoder layer


def test_gradient_all_reduce_buckets_and_untouched_parameters():
    """In a one-process gloo group the all-reduce is the identity, so what comes back must be the
    gradients as they were: cut into buckets of at most 5 numbers ([2, 2, 1] and [6] in fp32, a
    2x2 bf16 tensor in its own buffer), put back at their offsets, with a parameter nobody touched left at ``grad=None`` (AdamW skips those)."""
    import torch
    import torch.distributed as dist

    params = [torch.nn.Parameter(torch.zeros(n)) for n in (2, 2, 1, 6)]
    params.append(torch.nn.Parameter(torch.zeros(2, 2, dtype=torch.bfloat16)))
    params.append(torch.nn.Parameter(torch.zeros(2)))  # untouched
    g = torch.Generator().manual_seed(0)
    for p in params[:5]:
        p.grad = torch.randn(p.shape, generator=g).to(p.dtype)
    expected = [p.grad.clone() for p in params[:5]]
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        loop.all_reduce_gradients(params, bucket_numel=5)
    finally:
        dist.destroy_process_group()
    for p, e in zip(params, expected):
        assert torch.equal(p.grad, e) and p.grad.dtype == e.dtype
    assert params[5].grad is None
