"""The files other tools read, generated from the manifest: what they say, that the manifest lists them with their
checksums, that a refresh rewrites them without re-exporting, and that fastembed then gives our vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.studies.interop import cosines, fastembed_vectors
from rosberta_export.interop import INTEROP_FILES, write_interop
from rosberta_onnx import Encoder, Manifest
from rosberta_onnx.cli import main
from rosberta_onnx.manifest import sha256_file

TEXTS = ["A man is playing a flute.", "Человек играет на флейте.", "я", "слово word " * 400]  # the last is over-long


@pytest.fixture
def artifact(artifact_copy):
    return artifact_copy


def test_the_files_say_what_the_manifest_says_and_are_listed_with_checksums(artifact):
    m = write_interop(artifact)
    f = m.model
    assert tuple(m.interop) == INTEROP_FILES and Manifest.read(artifact).interop == m.interop
    for rel, digest in m.interop.items():
        assert sha256_file(artifact / rel) == digest, rel
    read = lambda rel: json.loads((artifact / rel).read_text(encoding="utf-8"))
    tok = read("tokenizer_config.json")
    assert tok["model_max_length"] == f.max_length and tok["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert read("special_tokens_map.json") == {k: v for k, v in tok.items() if k.endswith("_token")}
    assert tok["cls_token"] == "<s>" and tok["sep_token"] == "</s>" and tok["pad_token"] == "<pad>"  # RoBERTa's
    pool = read("1_Pooling/config.json")
    assert pool["word_embedding_dimension"] == f.dim and pool["pooling_mode_cls_token"] == (f.pooling == "cls")
    assert pool["pooling_mode_mean_tokens"] == (f.pooling == "mean")
    assert read("sentence_bert_config.json")["max_seq_length"] == f.max_length
    assert read("config_sentence_transformers.json")["prompts"] == dict(f.prompts)  # prompt_name= applies ours
    modules = [mod["type"].rsplit(".", 1)[1] for mod in read("modules.json")]
    assert modules == ["Transformer", "Pooling"] + (["Normalize"] if f.normalize else [])
    config = read("config.json")  # no source config at hand: from the manifest's facts, and says so
    assert (config["hidden_size"], config["num_hidden_layers"], config["pad_token_id"]) == (
        f.hidden_size,
        f.num_layers,
        f.pad_token_id,
    )
    assert "manifest" in config["_note"]


def test_refresh_command_rewrites_them_with_the_source_config_and_keeps_it(artifact, tmp_path, capsys):
    source = tmp_path / "ckpt"
    source.mkdir()
    (source / "config.json").write_text(json.dumps({"model_type": "roberta", "hidden_size": 64, "mine": True}))
    assert main(["interop", str(artifact), "--source", str(source)]) == 0
    assert json.loads((artifact / "config.json").read_text())["mine"] is True
    first = Manifest.read(artifact).interop
    assert main(["interop", str(artifact)]) == 0  # again, without --source: the listed config.json is kept
    assert Manifest.read(artifact).interop == first
    assert Encoder.load(artifact, variant="fp32").dim == Manifest.read(artifact).model.dim  # the runtime is unmoved
    capsys.readouterr()
    assert main(["interop", str(artifact), "--source", str(tmp_path)]) == 2  # bad input: named, nothing written
    assert "has no config.json" in capsys.readouterr().err and Manifest.read(artifact).interop == first


def fastembed_cosines(artifact, variant: str) -> np.ndarray:
    """fastembed's vectors for TEXTS from the artifact folder, against ours: one cosine per text."""
    pytest.importorskip("fastembed")
    enc = Encoder.load(artifact, variant=variant)
    got = fastembed_vectors(artifact, enc, enc.manifest.variant(variant).file, TEXTS, threads=1)
    return cosines(got, enc.encode(TEXTS))


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_fastembed_opens_the_artifact_and_gives_our_vectors_even_past_the_max_length(artifact, variant):
    write_interop(artifact)
    cos = fastembed_cosines(artifact, variant)  # RoBERTa, CLS pooling
    assert cos.min() > 0.99999, cos  # the over-long text too: tokenizer_config.json says the artifact's length


def test_transformers_js_layout_links_the_weights_and_runs_as_the_original(artifact):
    import onnxruntime as ort

    from rosberta_export.interop import TRANSFORMERS_JS

    assert main(["interop", str(artifact), "--transformers-js"]) == 0
    m = Manifest.read(artifact)
    config = json.loads((artifact / "config.json").read_text())
    external = config["transformers.js_config"]["use_external_data_format"]
    ids = np.array([[0, 713, 16, 10, 1296, 2]], np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    for variant, name in TRANSFORMERS_JS.items():
        rec = m.variants[variant]
        graph = artifact / "onnx" / name
        assert m.interop[f"onnx/{name}"] == sha256_file(graph)
        if name in external:  # weights in a data file: the same file, linked under transformers.js's name
            data = artifact / "onnx" / f"{name}_data"
            (own,) = [f for f in rec.files if f != rec.file]
            assert (
                data.stat().st_ino == (artifact / own).stat().st_ino
                and m.interop[f"onnx/{name}_data"] == rec.files[own]
            )
        else:
            assert graph.stat().st_ino == (artifact / rec.file).stat().st_ino
        want = ort.InferenceSession(str(artifact / rec.file)).run(None, feeds)[0]
        got = ort.InferenceSession(str(graph)).run(None, feeds)[0]
        np.testing.assert_array_equal(got, want)
    assert main(["interop", str(artifact)]) == 0  # a refresh keeps the layout it found
    assert Manifest.read(artifact).interop == m.interop
