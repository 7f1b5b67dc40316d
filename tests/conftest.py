import os
from pathlib import Path

# No hub here: every test uses local files, and nothing may reach out to the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HH_DIR = REPO.parent / "shared" / "data" / "hh-harmless"


@pytest.fixture(scope="session")
def hh_dir() -> Path:
    if not (HH_DIR / "train.jsonl").exists():
        pytest.skip(f"the HH data is not at {HH_DIR}")
    return HH_DIR


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The one tiny model of the suite: a byte-vocabulary Llama (2 layers, hidden 32) saved as a
    Hugging Face folder. Tests that need other sizes build their own with ``tiny_causal_lm``."""
    from rlhfkit.models import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny") / "model", layers=2, hidden=32)
