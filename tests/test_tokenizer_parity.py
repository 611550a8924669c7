"""Torch-free tokenisation == transformers' tokenizer, on the full RU and EN STS dev sets and the edge cases."""

import pytest

from rosberta_onnx.tokenize import TextTokenizer

pytestmark = pytest.mark.torch


def _all_texts(max_length):
    from rosberta_export.corpus import edge_cases, sts_sentences

    return sts_sentences("dev") + list(edge_cases(max_length).values())


def _check(folder, tokenizer_json, max_length, pad_id):
    from transformers import AutoTokenizer

    ours = TextTokenizer(tokenizer_json, max_length=max_length, pad_id=pad_id)
    theirs = AutoTokenizer.from_pretrained(str(folder))
    texts = _all_texts(max_length)
    assert len(texts) > 6000
    a = ours.tokenize(texts).ids
    b = theirs(texts, truncation=True, max_length=max_length)["input_ids"]
    bad = [(i, texts[i][:40]) for i in range(len(texts)) if a[i] != b[i]]
    assert not bad, f"{len(bad)} texts tokenise differently, first: {bad[:5]}"
    # padded batch: same ids and mask as transformers' padding=True
    ids, mask = ours.pad(a[:64])
    enc = theirs(texts[:64], padding=True, truncation=True, max_length=max_length, return_tensors="np")
    assert (ids == enc["input_ids"]).all() and (mask == enc["attention_mask"]).all()


def test_roberta_bpe_tokenizer(tiny_checkpoint, tiny_artifact):
    _check(tiny_checkpoint, tiny_artifact / "tokenizer.json", 512, 1)


def test_bert_wordpiece_tokenizer(minilm_dir, minilm_export):
    _check(minilm_dir, minilm_export.folder / "tokenizer.json", minilm_export.manifest.model.max_length, 0)


def test_padding_and_truncation_blocks_in_the_file_are_ignored(tmp_path, tiny_artifact):
    import json

    d = json.loads((tiny_artifact / "tokenizer.json").read_text())
    d["truncation"] = {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0}
    d["padding"] = {
        "strategy": {"Fixed": 128},
        "direction": "Right",
        "pad_to_multiple_of": None,
        "pad_id": 1,
        "pad_type_id": 0,
        "pad_token": "<pad>",
    }
    p = tmp_path / "tokenizer.json"
    p.write_text(json.dumps(d))
    t = TextTokenizer(p, max_length=512, pad_id=1)
    r = t.tokenize(["слово " * 50])
    assert 8 < len(r.ids[0]) < 128 and not r.truncated[0]
