"""Round trips between formats on the real HH files, and the flaws the real data has."""

import json

import pytest

from rlhfkit.data import DataError, convert, load_pairs, read_items, scan, write_items
from rlhfkit.data.hf import dataset_to_items, items_to_dataset


def _records(path):
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


@pytest.mark.parametrize("split", ["train", "test"])
def test_hh_round_trip_through_our_schema_is_lossless(hh_dir, tmp_path, split):
    src = hh_dir / f"{split}.jsonl"
    ours, back = tmp_path / "ours.jsonl", tmp_path / "back.jsonl"
    convert(src, ours, to="rlhfkit", strict=False)
    convert(ours, back, to="hh")
    report = scan(src)
    flawed = {e.line for e in report.errors}
    original = [r for n, r in enumerate(_records(src), 1) if n not in flawed]
    assert _records(back) == original  # byte-identical transcripts, in order


def test_hh_round_trip_through_trl_formats_and_datasets(hh_dir, tmp_path):
    items = read_items(hh_dir / "test.jsonl", strict=False)
    for fmt in ("trl-pairs", "trl-implicit"):
        write_items(tmp_path / f"{fmt}.jsonl", items, fmt=fmt)
    again = read_items(tmp_path / "trl-pairs.jsonl")
    assert [(i.prompt, [r.text for r in i.responses]) for i in again] == \
           [(i.prompt, [r.text for r in i.responses]) for i in items]
    implicit = read_items(tmp_path / "trl-implicit.jsonl")
    assert [[r.text for r in i.responses] for i in implicit] == [[r.text for r in i.responses] for i in items]
    for fmt in ("trl-pairs", "rlhfkit"):
        restored = dataset_to_items(items_to_dataset(items, fmt=fmt))
        assert [(i.prompt, [r.text for r in i.responses]) for i in restored] == \
               [(i.prompt, [r.text for r in i.responses]) for i in items]
    restored_full = dataset_to_items(items_to_dataset(items, fmt="rlhfkit"))
    assert restored_full == items  # ids, annotations and metadata too


def test_real_data_flaws_are_reported_by_line(hh_dir):
    train = scan(hh_dir / "train.jsonl")
    assert [e.line for e in train.errors if e.kind == "empty_response"] == [169, 359, 903, 1471]
    assert len([e for e in train.errors if e.kind == "prefix_mismatch"]) == 3
    assert not train.fatal and len(train.items) == 1593
    test = scan(hh_dir / "test.jsonl")
    assert [(e.kind, e.line) for e in test.errors] == [("prefix_mismatch", 122)]


def test_training_load_skips_flaws_with_counted_warning_or_refuses_in_strict(hh_dir, caplog):
    pairs = load_pairs(hh_dir / "train.jsonl")
    assert len(pairs) == 1593
    assert "skipped 7 flawed records (4 empty_response, 3 prefix_mismatch)" in caplog.text
    with pytest.raises(DataError) as err:
        load_pairs(hh_dir / "train.jsonl", strict=True)
    assert err.value.line == 131 and err.value.kind == "prefix_mismatch"


def test_conversational_trl_pairs_and_unpaired(tmp_path):
    conv = {"prompt": [{"role": "user", "content": "hi"}],
            "chosen": [{"role": "assistant", "content": "hello"}],
            "rejected": [{"role": "assistant", "content": "go away"}]}
    unpaired = {"prompt": "q", "completion": "a", "label": False}
    (tmp_path / "c.jsonl").write_text(json.dumps(conv) + "\n")
    (tmp_path / "u.jsonl").write_text(json.dumps(unpaired) + "\n")
    [item] = read_items(tmp_path / "c.jsonl")
    assert item.prompt[0].content == "hi" and item.responses[1].text == "go away"
    write_items(tmp_path / "c2.jsonl", [item], fmt="trl-pairs")
    assert _records(tmp_path / "c2.jsonl") == [conv]
    [u] = read_items(tmp_path / "u.jsonl")
    assert u.annotations[0].judgement.thumbs_up is False
    write_items(tmp_path / "u2.jsonl", [u], fmt="trl-unpaired")
    assert _records(tmp_path / "u2.jsonl") == [unpaired]


def test_ranking_item_becomes_several_pairs_in_trl_format(tmp_path):
    item = {"prompt": "p", "responses": [{"text": "a"}, {"text": "b"}, {"text": "c"}],
            "annotations": [{"judgement": {"kind": "ranking", "tiers": [[2], [0, 1]]}}]}
    (tmp_path / "r.jsonl").write_text(json.dumps(item) + "\n")
    convert(tmp_path / "r.jsonl", tmp_path / "p.jsonl", to="trl-pairs")
    assert _records(tmp_path / "p.jsonl") == [{"prompt": "p", "chosen": "c", "rejected": "a"},
                                              {"prompt": "p", "chosen": "c", "rejected": "b"}]
