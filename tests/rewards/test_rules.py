"""Rule rewards: closed-form values, tricky number formats, and no exceptions on bad completions."""

import functools
from fractions import Fraction

import pytest

from rlhfkit.rewards.rules import (
    extract_code,
    extract_final_number,
    format_regex,
    length_target,
    numeric_exact_match,
)
from rlhfkit.models.tiny import byte_tokenizer


@pytest.mark.parametrize("text, expected", [
    ("#### 42", 42),
    ("The answer is 42.", 42),
    ("So we get 42", 42),
    ("First 3 apples, then 5, so 8 in all.", 8),
    ("Total: $1,234.", 1234),
    ("It is 1,234,567 exactly", 1234567),
    ("The result is -17.", -17),
    ("temperature \u221212 degrees", -12),  # unicode minus
    ("about 3.75 dollars", Fraction(15, 4)),
    ("#### .5", Fraction(1, 2)),
    ("#### -0.25", Fraction(-1, 4)),
    ("5-3 = 2", 2),  # the minus of 5-3 is an operator, not a sign
    ("We have 5-3", 3),
    ("#### 12\nBut wait, 13 maybe", 12),  # the marker wins over later numbers
    ("step 1: 7 * 6 = 42 #### 40 #### 42", 42),  # the last marker counts
    ("The answer is: 1,000 and not 5", 1000),
    ("answer is 10 ... the answer is 11", 11),
    ("it costs 20%", 20),
    ("version 1.2.3", Fraction(12, 10)),
    ("42.0", 42),
    ("x2 and y3 and 4th", 4),  # digits glued to letters are not numbers, "4th" is 4
])
def test_extract_final_number(text, expected):
    assert extract_final_number(text) == Fraction(expected)


@pytest.mark.parametrize("text", ["", "no numbers here", "#### ", "#### none", None, 42, "answer is unknown"])
def test_extract_final_number_none(text):
    assert extract_final_number(text) is None


def test_numeric_exact_match_values_and_reference_formats():
    completions = ["#### 42", "The answer is 42.0", "#### 41", "garbage", "", "#### 1,000", "0.1", "-3"]
    answers = [42, "42", 42, 42, 42, "1000", 0.1, "-3"]
    scores = numeric_exact_match(["p"] * 8, completions, answer=answers)
    assert scores == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert all(type(s) is float for s in scores)


def test_numeric_exact_match_config_errors_name_the_field():
    with pytest.raises(ValueError, match="'answer'"):
        numeric_exact_match(["p"], ["#### 1"])
    with pytest.raises(ValueError, match="2 values for 1"):
        numeric_exact_match(["p"], ["#### 1"], answer=[1, 2])
    with pytest.raises(ValueError, match="reference answer 0"):
        numeric_exact_match(["p"], ["#### 1"], answer=["n/a"])


def test_length_target_triangle():
    words = ["", "one", "a b c d", "a b c d e f g h", " ".join(["w"] * 9)]
    # target 4: r(n) = max(0, 1 - |n - 4| / 4) for n = 0, 1, 4, 8, 9
    assert length_target(["p"] * 5, words, target=4) == [0.0, 0.25, 1.0, 0.0, 0.0]
    tok = byte_tokenizer()  # one token per byte
    assert length_target(["p", "p"], ["abcd", "ab"], target=4, unit="tokens", tokenizer=tok) == [1.0, 0.5]
    with pytest.raises(ValueError, match="tokenizer"):
        length_target(["p"], ["x"], unit="tokens")
    with pytest.raises(ValueError, match="unit"):
        length_target(["p"], ["x"], unit="chars")


def test_format_regex():
    rule = functools.partial(format_regex, pattern=r"<answer>.*</answer>")
    assert rule(["p"] * 4, ["<answer>\n7\n</answer>", "answer 7", "", None]) == [1.0, 0.0, 0.0, 0.0]
    full = format_regex(["p", "p"], ["#### 7", "so #### 7"], pattern=r"#### \d+", fullmatch=True)
    assert full == [1.0, 0.0]
    with pytest.raises(ValueError, match="pattern"):
        format_regex(["p"], ["x"])
    with pytest.raises(ValueError, match="invalid pattern"):
        format_regex(["p"], ["x"], pattern="(")


def test_extract_code():
    text = "Plan.\n```python\ndef f():\n    return 1\n```\nUsage:\n```\nx = f()\n```\n```bash\nrm -rf /\n```"
    assert extract_code(text) == "def f():\n    return 1\n\nx = f()\n"
    assert extract_code("def g(): pass") == "def g(): pass"
    assert extract_code(None) == ""
