"""Calibration segment by segment gives the numbers the whole graph gives, holds one segment's X^T X at a time, and
falls back to the whole graph where LayerNorm outputs are not cuts (pre-LayerNorm models)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rosberta_export.layerwise import segments  # noqa: E402
from rosberta_export.rowwise import Calibration, channel_stats, weight_matmuls  # noqa: E402

H, F, V = 16, 32, 50


def _encoder(path, *, pre_ln: bool = False, seed: int = 0):
    """input_ids -> embeddings -> LN -> [masked mixing MatMul, out MatMul, residual, LN] -> [FFN up, Relu, down,
    residual, LN] -> last_hidden_state: a post-LayerNorm layer in miniature (BERT's shape). ``pre_ln`` normalises
    inside the branches instead, so the residual stream bypasses every LayerNorm. Weights in an external file."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = {
        "E": rng.normal(size=(V, H)),
        "Wq": rng.normal(size=(H, H)) * 0.3,
        "Wo": rng.normal(size=(H, H)) * 0.3,
        "W1": rng.normal(size=(H, F)) * 0.3,
        "W2": rng.normal(size=(F, H)) * 0.3,
        "g": np.ones(H),
        "b": np.zeros(H),
    }
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in w.items()]
    inits.append(numpy_helper.from_array(np.array([-1], np.int64), "last"))
    ln = lambda x, y, name: helper.make_node("LayerNormalization", [x, "g", "b"], [y], name=name, axis=-1)
    nodes = [
        helper.make_node("Gather", ["E", "input_ids"], ["emb"], name="emb"),
        ln("emb", "h0", "ln0"),
        helper.make_node("Cast", ["attention_mask"], ["mf"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mf", "last"], ["m3"], name="unsq"),
    ]
    if pre_ln:
        nodes += [
            ln("h0", "n1", "ln1"),
            helper.make_node("MatMul", ["n1", "Wq"], ["q"], name="mq"),
            helper.make_node("Mul", ["q", "m3"], ["qm"], name="mask"),
            helper.make_node("MatMul", ["qm", "Wo"], ["o"], name="mo"),
            helper.make_node("Add", ["o", "h0"], ["h1"], name="res1"),
            ln("h1", "n2", "ln2"),
            helper.make_node("MatMul", ["n2", "W1"], ["u"], name="m1"),
            helper.make_node("Relu", ["u"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "W2"], ["d"], name="m2"),
            helper.make_node("Add", ["d", "h1"], ["last_hidden_state"], name="res2"),
        ]
    else:
        nodes += [
            helper.make_node("MatMul", ["h0", "Wq"], ["q"], name="mq"),
            helper.make_node("Mul", ["q", "m3"], ["qm"], name="mask"),
            helper.make_node("MatMul", ["qm", "Wo"], ["o"], name="mo"),
            helper.make_node("Add", ["o", "h0"], ["a1"], name="res1"),
            ln("a1", "h1", "ln1"),
            helper.make_node("MatMul", ["h1", "W1"], ["u"], name="m1"),
            helper.make_node("Relu", ["u"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "W2"], ["d"], name="m2"),
            helper.make_node("Add", ["d", "h1"], ["a2"], name="res2"),
            ln("a2", "last_hidden_state", "ln2"),
        ]
    g = helper.make_graph(
        nodes,
        "enc",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, [None, None]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [None, None]),
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [None, None, H])],
        inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, str(path), save_as_external_data=True, location=path.name + ".data", size_threshold=64)
    return path


def _batches(seed: int = 1):
    rng = np.random.default_rng(seed)
    out = []
    for length in (5, 9, 7):
        ids = rng.integers(0, V, size=(3, length)).astype(np.int64)
        mask = np.ones_like(ids)
        mask[1, length - 2 :] = 0  # a padded row: its positions must not count
        out.append((ids, mask))
    return out


def _inputs(path) -> list[str]:
    graph = onnx.load(str(path), load_external_data=False).graph
    return sorted({n.input[0] for n in weight_matmuls(graph)})


def test_segment_by_segment_gives_the_whole_graphs_statistics(tmp_path):
    raw = _encoder(tmp_path / "raw.onnx")
    tensors = _inputs(raw)
    whole = channel_stats(raw, tensors, _batches(), keep_rows=6, grams=True)
    parts: list[Calibration] = []
    seg = channel_stats(raw, tensors, _batches(), keep_rows=6, grams=True, on_segment=parts.append)
    assert seg.segments == 3 and len(parts) == 3  # embeddings; mixing half; FFN half
    assert [sorted(p.grams) for p in parts] == [["h0"], ["h1", "qm"], ["r"]]  # each X^T X handed over once
    assert seg.grams == {}  # ...and not kept
    got = {k: v for p in parts for k, v in p.grams.items()}
    assert set(got) == set(whole.grams) == set(tensors)
    for t in tensors:
        np.testing.assert_array_equal(got[t], whole.grams[t])
        np.testing.assert_array_equal(seg.ranges[t][0], whole.ranges[t][0])
        np.testing.assert_array_equal(seg.ranges[t][1], whole.ranges[t][1])
        np.testing.assert_array_equal(seg.samples[t], whole.samples[t])


def test_a_pre_layernorm_graph_is_not_cut_and_calibrates_whole(tmp_path):
    raw = _encoder(tmp_path / "raw.onnx", pre_ln=True)
    tensors = _inputs(raw)
    assert segments(onnx.load(str(raw), load_external_data=False).graph, tensors) is None
    parts: list[Calibration] = []
    cal = channel_stats(raw, tensors, _batches(), grams=True, on_segment=parts.append)
    assert cal.segments == 0 and len(parts) == 1 and set(parts[0].grams) == set(tensors) and cal.grams == {}
