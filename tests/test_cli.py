"""The CLI as a user meets it: exit codes, messages with file and line, progress, resume."""

import json

import pytest
from typer.testing import CliRunner

from rlhfkit.cli import app

runner = CliRunner()


def _commands(group=app, prefix=()):
    import typer.main

    click_cmd = typer.main.get_command(group)
    stack = [(prefix, click_cmd)]
    while stack:
        path, cmd = stack.pop()
        sub = getattr(cmd, "commands", None)
        if sub:
            stack.extend((path + (name,), c) for name, c in sub.items())
        else:
            yield path


@pytest.mark.parametrize("path", sorted(_commands()))
def test_every_command_has_help_with_an_example(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_validate_reports_flaws_by_line(hh_dir):
    result = runner.invoke(app, ["data", "validate", str(hh_dir / "train.jsonl")])
    assert result.exit_code == 0
    for line in (169, 359, 903, 1471, 131, 980, 1183):
        assert f"line {line}:" in result.output
    assert "1593 valid records, 7 with content flaws" in result.output
    strict = runner.invoke(app, ["data", "validate", "--strict", str(hh_dir / "train.jsonl")])
    assert strict.exit_code == 1


def test_validate_malformed_exits_1_and_missing_file_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": 1, "rejected": "b"}\n')
    result = runner.invoke(app, ["data", "validate", str(bad)])
    assert result.exit_code == 1
    assert "bad.jsonl, line 2: field 'chosen': expected a string" in result.output
    missing = runner.invoke(app, ["data", "stats", str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 2 and "no such file" in missing.output and "Traceback" not in missing.output


def test_stats_prints_length_bias_of_hh_test(hh_dir):
    result = runner.invoke(app, ["data", "stats", str(hh_dir / "test.jsonl")])
    assert result.exit_code == 0, result.output
    # 133 of the 299 usable test pairs chose the longer (by characters) answer.
    assert "longer answer chosen (by characters): 44.5% (133 of 299" in result.output


def test_convert_to_trl_and_dataset(hh_dir, tmp_path):
    out = tmp_path / "pairs.jsonl"
    result = runner.invoke(app, ["data", "convert", str(hh_dir / "test.jsonl"), str(out), "--to", "trl-pairs"])
    assert result.exit_code == 0, result.output
    first = json.loads(out.open().readline())
    assert set(first) == {"prompt", "chosen", "rejected"} and first["prompt"].endswith("\n\nAssistant:")
    ds_dir = tmp_path / "ds"
    result = runner.invoke(app, ["data", "convert", str(out), str(ds_dir), "--to", "trl-pairs", "--dataset"])
    assert result.exit_code == 0, result.output
    import datasets

    assert len(datasets.load_from_disk(str(ds_dir))) == 299


def test_generate_writes_schema_and_resumes(tiny_model_dir, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\nthree\n")
    out = tmp_path / "samples.jsonl"
    args = ["generate", "--model", str(tiny_model_dir), "--prompts", str(prompts), "--n", "3",
            "--out", str(out), "--max-new-tokens", "6", "--batch-size", "2"]
    # Simulate an interrupted run: the first prompt is already in the partial file.
    from rlhfkit.models import load_causal_lm
    from rlhfkit.rollout.generate import SamplingConfig, generate_items
    from rlhfkit.rollout.prompts import read_prompts

    model, tok = load_causal_lm(tiny_model_dir)
    [done] = generate_items(model, tok, read_prompts(prompts)[:1], SamplingConfig(n=3, max_new_tokens=6),
                            model_name="tiny")
    (tmp_path / "samples.jsonl.partial").write_text(done.model_dump_json() + "\n")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "resuming: 1 prompts already" in result.output
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert [l["metadata"]["prompt_id"] for l in lines] == ["p1", "p2", "p3"]
    from rlhfkit.schema import PreferenceItem

    assert PreferenceItem.model_validate(lines[0]) == done  # kept, not redone
    assert all(len(l["responses"]) == 3 for l in lines)
    assert lines[1]["responses"][0]["provenance"]["model"] == str(tiny_model_dir)
    assert not (tmp_path / "samples.jsonl.partial").exists()


def test_generate_with_unreachable_hub_model_is_a_clear_error(tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("x\n")
    result = runner.invoke(app, ["generate", "--model", "org/not-here", "--prompts", str(prompts),
                                 "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2
    assert "no model hub is reachable" in result.output and "Traceback" not in result.output
