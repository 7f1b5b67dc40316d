"""Rule rewards shipped with rlhfkit, each a plain function with the reward interface.

    rule(prompts, completions, **metadata) -> list[float]   (see rewards/base.py)

Settings (a target length, a regex) are keyword arguments, bound with ``functools.partial`` or
the ``kwargs`` of a reward recipe entry; per-sample data (a reference ``answer``, unit
``tests``) arrive as metadata lists aligned with ``completions``. A malformed completion is
reward 0.0, never an exception; a missing setting or metadata field is a configuration error
and raises ValueError.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any, Sequence


def _per_sample(name: str, metadata: dict, n: int) -> list:
    if name not in metadata or metadata[name] is None:
        raise ValueError(f"this reward needs the metadata field {name!r} (one value per completion)")
    values = list(metadata[name])
    if len(values) != n:
        raise ValueError(f"metadata field {name!r} has {len(values)} values for {n} completions")
    return values


# --------------------------------------------------------------------------- length
def length_target(prompts: Sequence, completions: Sequence[str], *, target: int = 100, unit: str = "words",
                  tokenizer: Any = None, **metadata) -> list[float]:
    """Triangular reward peaking at ``target`` units: r(n) = max(0, 1 - |n - target| / target).

    So r = 1 at exactly ``target``, falls linearly to 0 at 0 units and at 2 * target units, and
    stays 0 beyond. ``unit`` is "words" (whitespace-separated) or "tokens" (needs ``tokenizer``,
    a Hugging Face tokenizer; counted without special tokens).
    """
    if target <= 0:
        raise ValueError(f"length_target: target must be a positive count, got {target}")
    if unit == "words":
        counts = [len(str(c).split()) for c in completions]
    elif unit == "tokens":
        if tokenizer is None:
            raise ValueError("length_target: unit='tokens' needs a tokenizer")
        counts = [len(ids) for ids in tokenizer([str(c) for c in completions], add_special_tokens=False)["input_ids"]]
    else:
        raise ValueError(f"length_target: unit must be 'words' or 'tokens', got {unit!r}")
    return [max(0.0, 1.0 - abs(n - target) / target) for n in counts]


# --------------------------------------------------------------------------- format
def format_regex(prompts: Sequence, completions: Sequence[str], *, pattern: str | None = None,
                 fullmatch: bool = False, flags: int = re.DOTALL, **metadata) -> list[float]:
    """1.0 where ``pattern`` is found in the completion (``re.search``; the whole completion with
    ``fullmatch=True``), else 0.0. Default flags: DOTALL, so ``.`` crosses lines."""
    if not pattern:
        raise ValueError("format_regex needs a 'pattern' keyword argument")
    try:
        regex = re.compile(pattern, flags)
    except re.error as err:
        raise ValueError(f"format_regex: invalid pattern {pattern!r}: {err}") from None
    match = regex.fullmatch if fullmatch else regex.search
    return [1.0 if isinstance(c, str) and match(c) else 0.0 for c in completions]


# --------------------------------------------------------------------------- final number
# A number: an optional sign not glued to a preceding word or number ("5-3" is 5 and 3, not -3),
# digits with optional thousands commas ("1,234,567"), an optional decimal part; ".5" too.
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)|(?<![\w.])-?\.\d+")
_MARKERS = (re.compile(r"####"), re.compile(r"answer\s*(?:is|:)", re.IGNORECASE))


def _to_fraction(token: str) -> Fraction:
    return Fraction(token.replace(",", ""))


def extract_final_number(text: str) -> Fraction | None:
    """The completion's final answer as an exact Fraction, or None when there is none.

    Rule: after the LAST "####" take the first number; else after the last "answer is" /
    "answer:" take the first number; else the last number in the text. Unicode minus signs
    count as "-"; "$", "%" and a trailing full stop are ignored because they are not digits.
    """
    if not isinstance(text, str):
        return None
    text = text.replace("\u2212", "-")
    for marker in _MARKERS:
        spans = list(marker.finditer(text))
        if spans:
            found = _NUMBER.search(text, spans[-1].end())
            return _to_fraction(found.group()) if found else None
    numbers = _NUMBER.findall(text)
    return _to_fraction(numbers[-1]) if numbers else None


def _reference(value, index: int) -> Fraction:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"numeric_exact_match: reference answer {index} is {value!r}, not a number")
    if isinstance(value, (int, Fraction)):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(repr(value))  # 0.1 means the decimal 0.1, not its binary neighbour
    parsed = extract_final_number(str(value))
    if parsed is None:
        raise ValueError(f"numeric_exact_match: reference answer {index} ({value!r}) holds no number")
    return parsed


def numeric_exact_match(prompts: Sequence, completions: Sequence[str], **metadata) -> list[float]:
    """1.0 where the completion's final number (``extract_final_number``) equals the metadata
    ``answer`` exactly (as rationals, so "42.0" == 42 and "1,000" == 1000), else 0.0."""
    answers = _per_sample("answer", metadata, len(completions))
    references = [_reference(a, i) for i, a in enumerate(answers)]
    return [1.0 if extract_final_number(c) == ref else 0.0 for c, ref in zip(completions, references)]


# --------------------------------------------------------------------------- code
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)```", re.DOTALL)


def extract_code(completion: str) -> str:
    """The Python in a completion: all ```python / ```py / bare ``` fenced blocks joined in order,
    or the whole completion when it has no fence."""
    if not isinstance(completion, str):
        return ""
    blocks = [body for lang, body in _FENCE.findall(completion) if lang.lower() in ("", "python", "py", "python3")]
    return "\n".join(blocks) if blocks else completion


def code_unit_tests(prompts: Sequence, completions: Sequence[str], *, timeout_s: float = 5.0, cpu_s: int = 5,
                    memory_mb: int = 512, workers: int = 2, **metadata) -> list[float]:
    """Fraction of unit tests passed by the completion's code, run in ``rewards.sandbox``.

    Metadata ``tests``: per completion, a list of Python snippets (usually asserts) run after
    the code in its namespace, or one string taken as a single test. A completion whose code
    fails to compile, raises, times out or is refused by the sandbox scores 0.0.
    """
    from rlhfkit.rewards.sandbox import SandboxLimits, run_tests

    tests = _per_sample("tests", metadata, len(completions))
    tests = [[t] if isinstance(t, str) else list(t) for t in tests]
    limits = SandboxLimits(timeout_s=timeout_s, cpu_s=cpu_s, memory_bytes=memory_mb * 2**20)

    def score(i: int) -> float:
        if not tests[i]:
            return 0.0
        return float(run_tests(extract_code(completions[i]), tests[i], limits).fraction)

    # each run is a separate process, so threads here only wait on subprocesses
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(score, range(len(completions))))
