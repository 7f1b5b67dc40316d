"""Every kind of malformed input fails with the file, the line and the field."""

import json
import os

import pytest

from rlhfkit.data import DataError, read_items, write_items
from rlhfkit.data.atomic import atomic_write

GOOD = {"prompt": "p", "chosen": "yes", "rejected": "no"}


def _write(path, lines):
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
    return path


@pytest.mark.parametrize(
    "bad, line, field, message",
    [
        ('{"prompt": "p", "chosen": ', 2, None, "invalid JSON"),
        ({"prompt": "p", "chosen": "yes"}, 2, "rejected", "missing field"),
        ({"prompt": "p", "chosen": 3, "rejected": "no"}, 2, "chosen", "expected a string"),
        ({"prompt": "p", "chosen": "yes", "rejected": "  "}, 2, "rejected", "empty"),
        ({"prompt": "p", "responses": [{"text": "only one"}]}, 2, None, "at least 2 responses"),
        ({"prompt": "p", "responses": [{"text": "a"}, {"text": ""}]}, 2, "responses.1.text", "empty"),
        ({"prompt": "p", "responses": [{"text": "a"}, {"text": 5}]}, 2, "responses.1.text", "string"),
        ({"prompt": "p", "completion": "c", "label": "yes"}, 2, "label", "true or false"),
        ([1, 2], 2, None, "JSON object"),
    ],
)
def test_malformed_record_names_file_line_and_field(tmp_path, bad, line, field, message):
    # The first record fixes the file's format; line 2 is checked against it.
    first = GOOD
    if isinstance(bad, dict) and "responses" in bad:
        first = {"prompt": "p", "responses": [{"text": "a"}, {"text": "b"}]}
    elif isinstance(bad, dict) and "label" in bad:
        first = {"prompt": "p", "completion": "c", "label": True}
    path = _write(tmp_path / "data.jsonl", [first, bad])
    with pytest.raises(DataError) as err:
        read_items(path)
    e = err.value
    assert (e.path, e.line, e.field) == (str(path), line, field)
    assert message in str(e) and str(path) in str(e) and f"line {line}" in str(e)


def test_unrecognised_record(tmp_path):
    path = _write(tmp_path / "d.jsonl", [{"question": "p"}])
    with pytest.raises(DataError, match=r"d.jsonl, line 1: unrecognised record with keys \['question'\]"):
        read_items(path)


def test_missing_field_with_explicit_format(tmp_path):
    path = _write(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "a"}])
    with pytest.raises(DataError, match=r"line 1: field 'rejected': missing field"):
        read_items(path, fmt="trl-pairs")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_items(tmp_path / "nope.jsonl")


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with atomic_write(out) as fh:
            fh.write("half")
            raise Boom
    assert out.read_text() == "precious\n"
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_write_items_is_atomic_on_bad_format(tmp_path):
    with pytest.raises(ValueError, match="unknown format"):
        write_items(tmp_path / "x.jsonl", [], fmt="csv")
    assert not (tmp_path / "x.jsonl").exists()
