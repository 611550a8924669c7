"""Graph rewrites after quantisation or fusion (export/rosberta_export/rewrites.py): the same pooled output, less work.

Checked on the tiny stand-in: its raw fp32 graph run by OpenVINO, its row-wise int8 graph and its fused fp32 graph
run by onnxruntime, each before and after the rewrite."""

from __future__ import annotations

import numpy as np
import pytest

from rosberta_onnx.openvino_engine import openvino_available

pytestmark = pytest.mark.torch
needs_openvino = pytest.mark.skipif(
    not openvino_available(), reason="needs openvino (pip install 'rosberta-onnx[openvino]')"
)


@pytest.fixture(scope="module")
def raw_graph(tiny_checkpoint, tmp_path_factory):
    from rosberta_export.convert import export_fp32
    from rosberta_export.source import resolve_source

    src = resolve_source(str(tiny_checkpoint))
    return export_fp32(src, tmp_path_factory.mktemp("raw") / "raw.onnx"), src


def _rewritten(raw, tmp_path, name, pooling, engine="openvino"):
    import onnx

    from rosberta_export.rewrites import rewrite_for_onnxruntime, rewrite_for_openvino

    model = onnx.load(str(raw))
    rewrite = rewrite_for_openvino if engine == "openvino" else rewrite_for_onnxruntime
    done = rewrite(model.graph, pooling=pooling)
    out = tmp_path / name
    onnx.save_model(model, str(out))
    return out, done, model.graph


def _run(path, feeds):
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled(feeds)[0]


def _feeds(pad_id):
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 200, size=(3, 12)).astype(np.int64)
    mask = np.ones_like(ids)
    ids[1, 7:], mask[1, 7:] = pad_id, 0  # a padded row: positions and the attention mask must still hold
    return {"input_ids": ids, "attention_mask": mask}


def _transposes(graph, perm):
    return sum(
        1
        for n in graph.node
        if n.op_type == "Transpose" and next(list(a.ints) for a in n.attribute if a.name == "perm") == perm
    )


@needs_openvino
def test_cls_rewrites_keep_the_first_token_and_drop_the_rest(raw_graph, tmp_path):
    raw, src = raw_graph
    layers = int(src.config["num_hidden_layers"])
    out, done, graph = _rewritten(raw, tmp_path, "cls.onnx", "cls")
    assert done == {"key_transposes_split": layers, "first_token_tail": 1}
    assert _transposes(graph, [0, 2, 3, 1]) == 0 and _transposes(graph, [0, 1, 3, 2]) == layers
    feeds = _feeds(int(src.config["pad_token_id"]))
    before, after = _run(raw, feeds), _run(out, feeds)
    assert before.shape == (3, 12, src.config["hidden_size"]) and after.shape == (3, 1, src.config["hidden_size"])
    np.testing.assert_allclose(after[:, 0], before[:, 0], rtol=0, atol=1e-5)
    assert not np.allclose(after[:, 0], before[:, 1], atol=1e-3)  # row 0 is the first token, not some other one


@needs_openvino
def test_mean_pooling_keeps_every_token(raw_graph, tmp_path):
    raw, src = raw_graph
    out, done, _ = _rewritten(raw, tmp_path, "mean.onnx", "mean")
    assert done == {"key_transposes_split": int(src.config["num_hidden_layers"]), "first_token_tail": 0}
    feeds = _feeds(int(src.config["pad_token_id"]))
    np.testing.assert_allclose(_run(out, feeds), _run(raw, feeds), rtol=0, atol=1e-5)


def test_the_int8_graph_for_onnxruntime_keeps_its_first_token(raw_graph, tmp_path):
    """The row-wise int8 graph quantises each MatMul input per token, so the tail is found behind those ops."""
    import onnxruntime as ort

    from rosberta_export.quantize import quantize_int8

    raw, src = raw_graph
    int8 = quantize_int8(raw, tmp_path / "int8.onnx", recipe="rowwise-sq-rtn", tokenizer=_tokenizer(src, tmp_path))
    out, done, _ = _rewritten(int8, tmp_path, "int8-cls.onnx", "cls", engine="onnxruntime")
    assert done == {"first_token_tail": 1}
    feeds = _feeds(int(src.config["pad_token_id"]))
    run = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    before, after = run(int8), run(out)
    assert after.shape == (3, 1, before.shape[2])
    np.testing.assert_allclose(after[:, 0], before[:, 0], rtol=0, atol=1e-5)


def test_the_fused_fp32_graph_keeps_its_first_token(raw_graph, tmp_path):
    """After onnxruntime's fusions the tail starts at the last fused Attention and its SkipLayerNormalization."""
    import onnx
    import onnxruntime as ort

    from rosberta_export.fuse import write_fused

    raw, src = raw_graph
    hidden, heads = int(src.config["hidden_size"]), int(src.config["num_attention_heads"])
    kw = dict(num_heads=heads, hidden_size=hidden, props={})
    _, counts, kept = write_fused(raw, tmp_path / "mean.onnx", pooling="mean", **kw)
    _, _, done = write_fused(raw, tmp_path / "cls.onnx", pooling="cls", **kw)
    assert counts["Attention"] == int(src.config["num_hidden_layers"])  # the fused pattern, not the raw one
    assert kept == {"first_token_tail": 0} and done == {"first_token_tail": 1}
    assert sum(n.op_type == "Slice" for n in onnx.load(str(tmp_path / "cls.onnx")).graph.node) == 2
    feeds = _feeds(int(src.config["pad_token_id"]))
    run = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    before, after = run(tmp_path / "mean.onnx"), run(tmp_path / "cls.onnx")
    assert before.shape == (3, 12, hidden) and after.shape == (3, 1, hidden)
    np.testing.assert_allclose(after[:, 0], before[:, 0], rtol=0, atol=1e-5)
    assert not np.allclose(after[:, 0], before[:, 1], atol=1e-3)


def _tokenizer(src, tmp_path):
    from transformers import AutoTokenizer

    from rosberta_onnx.tokenize import TextTokenizer

    AutoTokenizer.from_pretrained(str(src.folder)).backend_tokenizer.save(str(tmp_path / "tokenizer.json"))
    return TextTokenizer(tmp_path / "tokenizer.json", max_length=src.max_length, pad_id=int(src.config["pad_token_id"]))


def test_a_graph_of_another_shape_is_left_alone():
    from onnx import TensorProto, helper

    from rosberta_export.rewrites import first_token_tail

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    before = graph.SerializeToString()
    assert first_token_tail(graph) is False
    assert graph.SerializeToString() == before


def test_mean_pooling_refuses_a_first_token_only_output():
    from rosberta_onnx.errors import ArtifactError
    from rosberta_onnx.pooling import pool

    with pytest.raises(ArtifactError, match="computes only the first token"):
        pool(np.zeros((2, 1, 4), np.float32), np.ones((2, 5), np.int64), "mean")
