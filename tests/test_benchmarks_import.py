"""benchmarks/grpo.py: its flags parse and its small helpers are right, without running a benchmark."""

import math

import pytest

from tests.benchmark_modules import heavy_modules_after, load_benchmark



def load_bench():
    return load_benchmark("grpo")


def test_import_is_light():
    # the module must import without torch/trl so --help is instant and this test is cheap
    assert heavy_modules_after("grpo", "build_parser()", ("torch", "trl", "transformers")) == []


def test_defaults_and_flags():
    bench = load_bench()
    args = bench.parse_args([])
    assert (args.steps, args.group_size, args.prompts_per_step, args.max_new_tokens) == (6, 8, 2, 48)
    assert args.variants == ["ours", "trl"] and args.model == "smollm2-135m" and args.dtype == "auto"
    args = bench.parse_args(["--model", "/tmp/x", "--steps", "2", "--variants", "trl", "--lr", "3e-6",
                             "--beta", "0", "--seed", "5", "--group-size", "4", "--prompts-per-step", "1",
                             "--max-new-tokens", "16", "--reward", "exact"])
    assert (args.model, args.steps, args.variants) == ("/tmp/x", 2, ["trl"])
    assert (args.lr, args.beta, args.seed) == (3e-6, 0.0, 5)
    assert (args.group_size, args.prompts_per_step, args.max_new_tokens, args.reward) == (4, 1, 16, "exact")


@pytest.mark.parametrize("argv", [["--variants", "ours,vllm"], ["--variants", ""], ["--steps", "1"],
                                  ["--group-size", "1"]])
def test_bad_flags_exit_with_a_message(argv):
    with pytest.raises(SystemExit) as err:
        load_bench().parse_args(argv)
    assert err.value.code != 0


def test_trl_adapter_passes_text_and_columns_to_the_rule():
    bench = load_bench()
    rule = bench.RecordedRule("exact", length_target=20)
    prompts = [[{"role": "user", "content": "2+2?"}]] * 2
    completions = [[{"role": "assistant", "content": "#### 4"}], [{"role": "assistant", "content": "it is 5"}]]
    rewards = rule.trl_adapter()(prompts=prompts, completions=completions, completion_ids=[[1], [2]],
                                 trainer_state=object(), log_extra=print, log_metric=print, answer=[4, 4])
    assert rewards == [1.0, 0.0]
    # our trainer's call convention records the same thing
    assert rule(prompts, ["4", "#### 3"], answer=[4, 4]) == [1.0, 0.0]
    assert rule.calls == [(["2+2?", "2+2?"], [1.0, 0.0])] * 2


def test_length_rule_peaks_at_the_target():
    rule = load_bench().RecordedRule("length", length_target=4)
    # triangular: 1 - |n - 4| / 4 for n = 4, 2, 8 words
    assert rule(["p"] * 3, ["a b c d", "a b", "a b c d e f g h"]) == [1.0, 0.5, 0.0]


def test_mean_ci_is_a_t_interval():
    # values 1, 2, 3: mean 2, sample sd 1, t(0.975, df=2) = 4.302653 -> half-width 4.302653 / sqrt(3)
    mean, half = load_bench().mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)


def test_checkpointing_probe_sees_the_model_flag():
    from rlhfkit.models import tiny_causal_lm

    bench = load_bench()
    model, _ = tiny_causal_lm(layers=1, hidden=16, heads=2, kv_heads=1)
    assert bench._checkpointing(model) is False
    # what TRL 1.x does by default (transformers 5 renamed the method; the old name warns)
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    assert bench._checkpointing(model) is True


def test_our_k2_has_the_gradient_of_trls_default_kl_term():
    # The benchmark runs ours with k2 in the loss because, on-policy, TRL 1.16's default KL term
    # k3 * ratio (use_bias_correction_kl=True, grpo_trainer.py _compute_loss) has the same per-token
    # gradient: d/dlogp = logp - ref_logp (closed form), while plain k3 gives 1 - exp(ref_logp - logp).
    import torch

    from rlhfkit.losses.kl import kl_k2, kl_k3

    torch.manual_seed(0)
    ref_logp = -torch.rand(3, 5, dtype=torch.float64) * 4
    logp = (-torch.rand(3, 5, dtype=torch.float64) * 4).requires_grad_()

    ratio = torch.exp(logp - logp.detach())  # TRL: old_per_token_logps = per_token_logps.detach()
    trl_kl = (torch.exp(ref_logp - logp) - (ref_logp - logp) - 1) * ratio
    (trl_grad,) = torch.autograd.grad(trl_kl.sum(), logp)
    (k2_grad,) = torch.autograd.grad(kl_k2(logp, ref_logp).sum(), logp)
    (k3_grad,) = torch.autograd.grad(kl_k3(logp, ref_logp).sum(), logp)

    expected = (logp - ref_logp).detach()
    torch.testing.assert_close(trl_grad, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(k2_grad, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(k3_grad, 1 - torch.exp(ref_logp - logp.detach()), rtol=0, atol=1e-12)
    assert not torch.allclose(k3_grad, expected)  # so the choice of estimator matters
