"""``report_to``: the metrics lines and online RL's completions reach TensorBoard, wandb (offline)
and mlflow (a SQLite store in the run folder), read back with each library's own reader (wandb: its run file's records).
A test skips, saying so, when its library is not installed; none of them is a dependency.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest
import torch

from rlhfkit.trainers import tracking
from rlhfkit.trainers.config import DPOConfig, RLConfig
from rlhfkit.trainers.registry import build_online
from tests.toy_data import lowercase_share, polite_pairs

torch.set_num_threads(1)


def grpo_run(model_dir, out, report_to: str):
    """Two GRPO steps on the tiny model (one rollout each), logged to ``report_to``."""
    cfg = RLConfig(model=str(model_dir), algo="grpo", lr=1e-3, lr_schedule="constant", batch_size=2, grad_accum=1,
                   group_size=4, max_new_tokens=6, max_steps=2, max_length=64, progress=False, seed=0,
                   report_to=report_to)
    trainer = build_online(cfg, polite_pairs(8), out, reward_fn=lowercase_share)
    trainer.train()
    return trainer


def samples(out, step: int) -> list[str]:
    lines = (out / "samples" / f"step-{step:06d}.jsonl").read_text().splitlines()
    return [json.loads(line)["completion"] for line in lines]


def test_unknown_tracker_refused():
    with pytest.raises(ValueError, match="report_to 'neptune'"):
        DPOConfig(report_to="neptune").validate()


def test_missing_library_named_with_its_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: import raises ImportError
    with pytest.raises(ValueError, match="pip install wandb"):  # at validation, before any set-up
        DPOConfig(report_to="wandb").validate()
    with pytest.raises(ImportError, match="pip install wandb"):
        tracking.open_tracker(DPOConfig(report_to="wandb"), tmp_path)
    assert tracking.open_tracker(DPOConfig(), tmp_path) is None  # report_to none: no tracker at all


def test_markdown_table_keeps_each_cell_on_its_row():
    text = tracking.markdown_table(["prompt", "completion"], [["a|b", "line 1\nline 2\r"]])
    assert text.split("\n") == ["| prompt | completion |", "|---|---|", "| a\\|b | line 1\\nline 2\\r |"]


def test_tensorboard(tiny_model_dir, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = grpo_run(tiny_model_dir, tmp_path, "tensorboard")
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    loss = [(e.step, e.value) for e in events.Scalars("loss")]
    assert [s for s, _ in loss] == [1, 2]
    assert [v for _, v in loss] == pytest.approx([h["loss"] for h in trainer.history], rel=1e-6, abs=1e-7)
    reward = [e.value for e in events.Scalars("reward/mean")]
    assert reward == pytest.approx([h["reward/mean"] for h in trainer.history], rel=1e-6)
    tables = {e.step: e.tensor_proto.string_val[0].decode() for e in events.Tensors("completions/text_summary")}
    assert sorted(tables) == [1, 2]
    for step, text in tables.items():
        records = [json.loads(line) for line in (tmp_path / "samples" / f"step-{step:06d}.jsonl").read_text().splitlines()]
        assert len(records) == 2 * 4 and len(text.split("\n")) == 2 + 8  # 2 prompts x 4 samples, one line each
        expected = [[r["step"], r["prompt"], r["completion"], r["reward"], r["kl"]] for r in records]
        assert text == tracking.markdown_table(["step", "prompt", "completion", "reward", "kl"], expected)


def _wandb_records(path):
    """The records of a wandb run file (LevelDB log format: 32 KiB blocks of CRC, length, type)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, pending, out = path.read_bytes(), 7, b"", []
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            break
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def test_wandb_offline(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install wandb)")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    import wandb

    trainer = grpo_run(tiny_model_dir, tmp_path, "wandb")
    wandb.teardown()  # finish() returns before wandb's service has flushed the offline run file
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    history = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
               for r in _wandb_records(run_file) if r.WhichOneof("record_type") == "history"]
    logged = [h for h in history if "loss" in h]
    assert [h["_step"] for h in logged] == [1, 2]
    assert [h["loss"] for h in logged] == pytest.approx([h["loss"] for h in trainer.history], rel=1e-12)
    for h in logged:  # each step's completions table, as the file the history record points to
        table = json.loads((run_file.parent / "files" / h["completions/path"]).read_text())
        assert table["columns"] == ["step", "prompt", "completion", "reward", "kl"]
        assert [row[2] for row in table["data"]] == samples(tmp_path, h["_step"])


def test_mlflow_local_store(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install mlflow)")
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    trainer = grpo_run(tiny_model_dir, tmp_path / "run", "mlflow")
    uri = f"sqlite:///{(tmp_path / 'run' / 'mlflow.db').resolve()}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("rlhfkit").experiment_id])
    loss = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss"))
    assert [s for s, _ in loss] == [1, 2]
    assert [v for _, v in loss] == pytest.approx([h["loss"] for h in trainer.history], rel=1e-12)
    assert run.data.params["algo"] == "grpo"
    for step in (1, 2):
        path = client.download_artifacts(run.info.run_id, f"completions/step-{step:06d}.json", str(tmp_path))
        table = json.loads(Path(path).read_text())  # mlflow's table file: {"columns": [...], "data": [...]}
        column = table["columns"].index("completion")
        assert [row[column] for row in table["data"]] == samples(tmp_path / "run", step)
