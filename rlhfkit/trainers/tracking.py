"""Experiment trackers beside ``metrics.jsonl``: ``report_to = none | tensorboard | wandb | mlflow``.

The loop (``loop.fit``) opens one tracker on rank 0 and hands it every metrics line it writes
and the trainer's tables (online RL: each rollout's prompts, completions, rewards and KL). Each
library is imported only when chosen, so none of them is a dependency. Where things go:

- tensorboard: a ``SummaryWriter`` under ``OUT/tensorboard``; tables as a text summary (markdown);
- wandb: a run under ``OUT/wandb`` (``WANDB_MODE``, ``WANDB_PROJECT`` and the rest of wandb's
  environment apply; ``WANDB_MODE=offline`` needs no account); tables as ``wandb.Table``;
- mlflow: the run goes to ``MLFLOW_TRACKING_URI`` when set, else to a local store in OUT
  (``OUT/mlflow.db``, SQLite, with artifacts in ``OUT/mlartifacts``: mlflow 3 refuses its old
  plain-file store by default); tables via ``mlflow.log_table`` (``TABLE/step-N.json`` artifacts).

Only numbers are sent as metrics (what the JSONL line holds that is not a number is left there).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from rlhfkit.trainers.config import REPORTERS

Table = tuple[list[str], list[list]]  # (column names, rows)


def _require(name: str):
    """Import a tracker's library (each is installed under its report_to name), or say how to get it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"report_to={name} needs the {name} package: pip install {name} "
                          f"(or report_to=none; metrics.jsonl is always written)") from err


def scalars(record: dict) -> dict[str, float]:
    """The numbers of a metrics line, without the step counter itself."""
    return {k: float(v) for k, v in record.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}


def markdown_table(columns: list[str], rows: list[list]) -> str:
    """A markdown table (what TensorBoard's text plugin renders); cells on one line, pipes escaped."""
    def cell(value) -> str:
        return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", "\\r").replace("\n", "\\n")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class TensorBoardTracker:
    def __init__(self, out: Path, config: dict):
        _require("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))
        self.writer.add_text("config", markdown_table(["setting", "value"], sorted(config.items())), 0)

    def log(self, record: dict | None, tables: dict[str, Table], step: int) -> None:
        for key, value in scalars(record or {}).items():
            self.writer.add_scalar(key, value, step)
        for name, (columns, rows) in tables.items():
            self.writer.add_text(name, markdown_table(columns, rows), step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, out: Path, config: dict):
        import os

        wandb = _require("wandb")
        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "rlhfkit"), name=out.name,
                              dir=str(out), config=config)

    def log(self, record: dict | None, tables: dict[str, Table], step: int) -> None:
        data: dict = dict(scalars(record or {}))
        data.update({name: self.wandb.Table(columns=columns, data=rows) for name, (columns, rows) in tables.items()})
        if data:
            self.run.log(data, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    def __init__(self, out: Path, config: dict):
        import os

        mlflow = _require("mlflow")
        self.mlflow = mlflow
        artifacts = None
        if not os.environ.get("MLFLOW_TRACKING_URI"):  # a local store in OUT (mlflow 3 retired plain files)
            mlflow.set_tracking_uri(f"sqlite:///{(out / 'mlflow.db').resolve()}")
            artifacts = (out / "mlartifacts").resolve().as_uri()
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "rlhfkit")
        experiment = mlflow.get_experiment_by_name(name)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else mlflow.create_experiment(name, artifact_location=artifacts))
        self.run = mlflow.start_run(experiment_id=experiment_id, run_name=out.name)
        # mlflow caps a parameter value at 6000 characters; recipes' lists are stringified
        mlflow.log_params({k: str(v)[:6000] for k, v in config.items()})

    def log(self, record: dict | None, tables: dict[str, Table], step: int) -> None:
        values = scalars(record or {})
        if values:
            self.mlflow.log_metrics({_mlflow_name(k): v for k, v in values.items()}, step=step)
        for name, (columns, rows) in tables.items():
            data = {c: [row[i] for row in rows] for i, c in enumerate(columns)}
            self.mlflow.log_table(data=data, artifact_file=f"{name}/step-{step:06d}.json")

    def close(self) -> None:
        self.mlflow.end_run()


def _mlflow_name(name: str) -> str:
    """mlflow accepts letters, digits and ``_ - . space : /`` in metric names; others become ``_``."""
    return "".join(ch if ch.isalnum() or ch in "_-. :/" else "_" for ch in name)


TRACKERS = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker, "mlflow": MlflowTracker}


def open_tracker(cfg, out: str | Path | None):
    """The tracker ``cfg.report_to`` names, writing under ``out``; None for ``none``."""
    name = getattr(cfg, "report_to", "none")
    if name == "none":
        return None
    if name not in TRACKERS:
        raise ValueError(f"unknown report_to {name!r}; choose {', '.join(REPORTERS)}")
    if out is None:
        raise ValueError(f"report_to={name} needs an output folder (out) for its run files")
    Path(out).mkdir(parents=True, exist_ok=True)
    return TRACKERS[name](Path(out), asdict(cfg))
