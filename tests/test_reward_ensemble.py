"""Ensembles with bootstrap (issue 15, section 2): per-head resampling, the ensemble's calibration
and whether its disagreement predicts error; metric values worked out by hand."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from rlhfkit.eval.reward_eval import (disputed_quartiles, ensemble_report, expected_calibration_error,
                                      probability_calibration_error)
from rlhfkit.trainers.reward_model import RewardModelTrainer, RewardTrainConfig, bootstrap_counts
from tests.toy_data import polite_pairs

torch.set_num_threads(1)


# ------------------------------------------------------------------ metrics, closed form
def test_probability_ece_by_hand():
    """bins = 5 over confidence [0.5, 1]: p = 0.92 and 0.95 share bin 4 (confidence mean 0.935,
    both right: |1 - 0.935| = 0.065); 0.84 (bin 3, right: 0.16), 0.27 -> confidence 0.73 (bin 2,
    wrong: 0.73), 0.56 (bin 0, right: 0.44), 0.61 (bin 1, right: 0.39).
    ECE = (2 * 0.065 + 0.16 + 0.73 + 0.44 + 0.39) / 6 = 1.85 / 6."""
    assert probability_calibration_error([0.92, 0.95, 0.84, 0.27, 0.56, 0.61], bins=5) == pytest.approx(1.85 / 6, abs=1e-12)
    # a margin m is the probability sigmoid(m): the same numbers through the margin form
    logit = [math.log(p / (1 - p)) for p in (0.92, 0.95, 0.84, 0.27, 0.56, 0.61)]
    assert expected_calibration_error(logit, bins=5) == pytest.approx(1.85 / 6, abs=1e-12)


MEMBER_MARGINS = [  # (member 1, member 2) margin r_c - r_r per pair
    (1.0, 1.0), (2.0, 2.0), (-1.0, -1.0),  # agree (std 0): right, right, wrong
    (0.5, 1.5), (1.0, -0.5),  # std 0.5 (mean 1, right), std 0.75 (mean 0.25, right)
    (3.0, -1.0), (-3.0, 1.0), (2.0, -4.0),  # std 2 (mean 1, right), std 2 (mean -1, wrong), std 3 (mean -1, wrong)
]


def test_disputed_quartiles_by_hand():
    means = [sum(m) / 2 for m in MEMBER_MARGINS]
    stds = [abs(a - b) / 2 for a, b in MEMBER_MARGINS]  # population std of two numbers
    q = disputed_quartiles(means, stds)
    # n = 8 -> quarters of 2; least disputed: pairs 0, 1 (std 0, first by input order); most: 6, 7
    assert q["least_disputed"] == {"n": 2, "accuracy": 1.0, "mean_disagreement": 0.0}
    assert q["most_disputed"] == {"n": 2, "accuracy": 0.0, "mean_disagreement": 2.5}
    assert disputed_quartiles([1.0, -1.0, 2.0], [0.1, 0.2, 0.3]) == {"least_disputed": None, "most_disputed": None}
    five = disputed_quartiles([1.0, -1.0, 2.0, -2.0, 3.0], [0.5, 0.4, 0.3, 0.2, 0.1])  # quarters of 1
    assert five["least_disputed"]["accuracy"] == 1.0 and five["most_disputed"]["accuracy"] == 1.0
    assert five["least_disputed"]["mean_disagreement"] == 0.1 and five["most_disputed"]["mean_disagreement"] == 0.5


def test_ensemble_report_by_hand():
    r = ensemble_report([list(m) for m in MEMBER_MARGINS])
    assert r["members"] == 2 and r["ece_bins"] == 10
    assert r["accuracy_gap"] == 1.0  # 1.0 on the least-disputed quartile, 0.0 on the most-disputed
    assert r["member_accuracy"] == [6 / 8, 4 / 8]
    means = [1.0, 2.0, -1.0, 1.0, 0.25, 1.0, -1.0, -1.0]
    assert r["ece"] == pytest.approx(expected_calibration_error(means, 10), abs=1e-12)
    # ensemble probability of pair 3 = (sigmoid(0.5) + sigmoid(1.5)) / 2, etc.
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    mean_p = [(sig(a) + sig(b)) / 2 for a, b in MEMBER_MARGINS]
    assert r["ece_mean_probability"] == pytest.approx(probability_calibration_error(mean_p, 10), abs=1e-12)
    assert r["ece"] != r["ece_mean_probability"]
    # relative disagreement std / |mean|: 0, 0, 0, 0.5, 3, 2, 2, 3 -> least: pairs 0, 1 (right, right);
    # most: pairs 4 (0.75 / 0.25 = 3, right) and 7 (3 / 1, wrong)
    rel = r["by_relative_disagreement"]
    assert rel["least_disputed"] == {"n": 2, "accuracy": 1.0, "mean_disagreement": 0.0}
    assert rel["most_disputed"] == {"n": 2, "accuracy": 0.5, "mean_disagreement": 3.0}
    assert rel["accuracy_gap"] == 0.5
    with pytest.raises(ValueError, match="at least 2 members"):
        ensemble_report([[1.0], [2.0]])


# ------------------------------------------------------------------ bootstrap resampling
def test_bootstrap_counts_are_resamples_seeded_and_differ_per_head():
    c = bootstrap_counts(2000, 3, seed=7)
    assert c.shape == (2000, 3) and (c.sum(0) == 2000).all()  # n draws per head
    assert torch.equal(c, bootstrap_counts(2000, 3, seed=7)) and not torch.equal(c, bootstrap_counts(2000, 3, seed=8))
    assert not torch.equal(c[:, 0], c[:, 1])
    out_of_bag = (c == 0).float().mean(0)  # P(never drawn) = (1 - 1/n)^n -> 1/e = 0.368
    assert ((out_of_bag - math.exp(-1)).abs() < 0.035).all()


def _cfg(model_dir, **kw):
    base = dict(model=str(model_dir), out="", max_length=64, batch_size=16, lr=1e-3, max_steps=2, warmup_ratio=0.0,
                progress=False, log_every=1, resume=False, max_grad_norm=0.0)
    return RewardTrainConfig(**{**base, **kw})


def test_bootstrap_head_loss_equals_training_on_the_resampled_set(tiny_model_dir):
    """One head, one micro-batch of all 16 pairs (weights 1): the bootstrap loss
    sum_i c_i l_i / 16 is the plain BT loss on the resampled list (pair i repeated c_i times)."""
    pairs = [p.model_copy(update={"weight": 1.0}) for p in polite_pairs(16)]
    boot = RewardModelTrainer(_cfg(tiny_model_dir, bootstrap=True, seed=3), train_pairs=pairs).setup()
    counts = boot.counts[:, 0].long().tolist()
    resampled = [p for p, c in zip(pairs, counts) for _ in range(c)]
    assert len(resampled) == 16 and counts.count(0) > 0  # some pairs are out of the bag
    plain = RewardModelTrainer(_cfg(tiny_model_dir, seed=3), train_pairs=resampled, model=boot.model).setup()
    [(micro_b, _)] = boot.micro_batches(list(range(16)))
    [(micro_p, _)] = plain.micro_batches(list(range(16)))
    params = [p for p in boot.model.parameters() if p.requires_grad]
    loss_b, _ = boot.loss(micro_b)
    loss_p, _ = plain.loss(micro_p)
    grads_b = torch.autograd.grad(loss_b, params)
    grads_p = torch.autograd.grad(loss_p, params)
    torch.testing.assert_close(loss_b, loss_p, atol=1e-6, rtol=0)
    for gb, gp in zip(grads_b, grads_p):
        torch.testing.assert_close(gb, gp, atol=1e-6, rtol=0)
    assert max(g.abs().max().item() for g in grads_b) > 1e-4


def test_bootstrap_heads_learn_different_functions_and_eval_reports_the_ensemble(tiny_model_dir, tmp_path):
    from rlhfkit.commands.reward import app

    pairs = polite_pairs(32)
    runs = {}
    for boot in (False, True):
        trainer = RewardModelTrainer(_cfg(tiny_model_dir, n_heads=3, bootstrap=boot, max_steps=6, lr=3e-3,
                                          batch_size=8, out=str(tmp_path / f"rm-{boot}")),
                                     train_pairs=pairs, eval_pairs=polite_pairs(20, seed=1)).setup()
        trainer.train()
        runs[boot] = trainer
    # same seed and data order: without bootstrap the heads differ only by initialisation
    w_plain, w_boot = runs[False].model.head.weight, runs[True].model.head.weight
    assert not torch.allclose(w_plain, w_boot)
    summary = runs[True].evaluate(n_boot=20)
    ens = summary["ensemble"]
    assert ens["members"] == 3 and ens["ece_bins"] == 10 and 0 <= ens["ece"] <= 0.5
    assert ens["least_disputed"]["n"] == ens["most_disputed"]["n"] == 5
    assert summary["ece"] == pytest.approx(ens["ece"], abs=1e-6)  # the top-level ECE is the ensemble mean's
    # the CLI reads the saved ensemble and prints the line
    folder = runs[True].save(summary)
    data = tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n"
                            for p in polite_pairs(20, seed=1)))
    res = CliRunner().invoke(app, ["eval", "--model", str(folder), "--data", str(data), "--n-boot", "20"],
                             terminal_width=250)
    assert res.exit_code == 0, res.output
    assert "ensemble of 3: ECE" in res.output and "most-disputed" in res.output
    written = json.loads((folder / "eval-held.json").read_text())
    assert written["ensemble"]["most_disputed"]["n"] == 5
    assert written["ensemble"]["ece"] == pytest.approx(ens["ece"], abs=1e-5)


def test_eval_of_a_folder_of_separate_members(tiny_model_dir, tmp_path):
    """Two separately trained single-head models in sub-folders score as an ensemble of 2."""
    from rlhfkit.commands.reward import app

    for seed in (0, 1):
        t = RewardModelTrainer(_cfg(tiny_model_dir, seed=seed, bootstrap=True, max_steps=2, batch_size=8,
                                    out=str(tmp_path / "ens" / f"member-{seed}")), train_pairs=polite_pairs(16)).setup()
        t.train()
        t.save()
    data = tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n"
                            for p in polite_pairs(8, seed=2)))
    res = CliRunner().invoke(app, ["eval", "--model", str(tmp_path / "ens"), "--data", str(data), "--n-boot", "20"],
                             terminal_width=250)
    assert res.exit_code == 0, res.output
    written = json.loads((tmp_path / "ens" / "eval-held.json").read_text())
    assert written["n_members"] == 2 and written["n_heads"] == 2 and written["ensemble"]["members"] == 2
