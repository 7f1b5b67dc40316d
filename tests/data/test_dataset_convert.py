"""`rlhfkit data convert --dataset` with mixed plain-text and chat prompts (issue 14)."""

import json

from typer.testing import CliRunner

from rlhfkit.cli import app

runner = CliRunner()
TEXT = {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}
CHAT = {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello"}],
        "rejected": [{"role": "assistant", "content": "Go away"}]}


def _file(tmp_path, records):
    f = tmp_path / "mixed.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in records))
    return f


def test_mixed_prompt_kinds_are_refused_naming_the_first_line_of_each(tmp_path):
    f = _file(tmp_path, [TEXT, TEXT, CHAT, TEXT])
    r = runner.invoke(app, ["data", "convert", str(f), str(tmp_path / "ds"), "--to", "trl-pairs", "--dataset"])
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())
    assert "mixed.jsonl" in out and "plain-text prompts (first at line 1)" in out and "chat prompts (first at line 3)" in out
    assert "Traceback" not in r.output and not (tmp_path / "ds").exists()


def test_one_prompt_kind_still_converts(tmp_path):
    import datasets

    for records in ([TEXT, TEXT], [CHAT, CHAT]):
        f = _file(tmp_path, records)
        r = runner.invoke(app, ["data", "convert", str(f), str(tmp_path / "ds"), "--to", "trl-pairs", "--dataset"])
        assert r.exit_code == 0, r.output
        assert len(datasets.load_from_disk(str(tmp_path / "ds"))) == 2


def test_mixed_kinds_convert_to_jsonl_and_to_our_dataset(tmp_path):
    f = _file(tmp_path, [TEXT, CHAT])
    r = runner.invoke(app, ["data", "convert", str(f), str(tmp_path / "out.jsonl"), "--to", "trl-pairs"])
    assert r.exit_code == 0 and len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    r = runner.invoke(app, ["data", "convert", str(f), str(tmp_path / "ds"), "--to", "rlhfkit", "--dataset"])
    assert r.exit_code == 0, r.output
