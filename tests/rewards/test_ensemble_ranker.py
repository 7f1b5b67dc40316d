"""The reward-model ensemble plugged into the annotation server's active-selection hook."""

from itertools import combinations

import pytest
import torch

from rlhfkit.commands.feedback import load_ranker
from rlhfkit.feedback.ranker import score_project
from rlhfkit.models import save_tiny
from rlhfkit.models.reward_model import RewardModel
from rlhfkit.rewards.ensemble import load_disagreement_ranker
from tests.feedback.conftest import env, make_items  # noqa: F401  (env is a fixture)


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory):
    backbone = save_tiny(tmp_path_factory.mktemp("tiny") / "lm", layers=2, hidden=32)
    model = RewardModel.from_backbone(backbone, n_heads=3, seed=1)
    with torch.no_grad():  # spread the heads so their disagreement differs between items
        model.head.weight.mul_(torch.tensor([[1.0], [-2.0], [3.0]]))
    return model.save(tmp_path_factory.mktemp("rm") / "ensemble")


def test_ranker_score_is_mean_std_of_member_margins(ensemble_dir):
    items = make_items(3, k=3)
    scores = load_disagreement_ranker(ensemble_dir)(items)
    model = RewardModel.load(ensemble_dir).eval()
    tok = model.tokenizer
    for item, score in zip(items, scores):
        # Independent path: score each full text separately with the plain transformers model.
        texts = [item.prompt + r.text for r in item.responses]
        enc = tok(texts, return_tensors="pt", padding=True)
        with torch.no_grad():
            rewards = model.net(**enc).logits  # (K, 3)
        stds = [(rewards[i] - rewards[j]).std(unbiased=False) for i, j in combinations(range(3), 2)]
        assert score == pytest.approx(float(torch.stack(stds).mean()), rel=1e-4, abs=1e-6)
    assert len(set(round(s, 6) for s in scores)) == 3  # the test would not notice a constant


def test_server_serves_most_disputed_items_first(env, ensemble_dir):
    pid = env.project(items=make_items(6, k=3), overlap=1)
    ranker = load_ranker(str(ensemble_dir))
    assert score_project(env.db, "p", ranker) == 6
    expected = ranker(make_items(6, k=3))
    order = sorted(range(6), key=lambda i: -expected[i])
    served = []
    for n in range(6):
        nxt = env.next("alice", pid)
        served.append(int(nxt["assignment"]["prompt"].removeprefix("question ").removesuffix("?")))
        body = {"id": f"j{n}", "judgement": {"kind": "ranking", "tiers": [[0], [1], [2]]}}
        r = env.client.post(f"/api/assignments/{nxt['assignment']['assignment_id']}/judgement", json=body,
                            headers=env.hdr("alice"))
        assert r.status_code == 201, r.text
    assert served == order


def test_single_head_model_is_refused_for_active_selection(tmp_path):
    backbone = save_tiny(tmp_path / "lm", layers=1, hidden=32)
    single = RewardModel.from_backbone(backbone, n_heads=1).save(tmp_path / "rm1")
    with pytest.raises(ValueError, match="needs an ensemble"):
        load_disagreement_ranker(single)(make_items(1))
