"""The static-activation rewrite the int8 studies measure, and how the MatMul profile names the GEMMs: on graphs
small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.studies.matmul_profile import ROWS, fc_kinds, profile_table
from benchmarks.studies.static_activations import write_static

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper, numpy_helper, TensorProto = onnx.helper, onnx.numpy_helper, onnx.TensorProto

K, N, T = 32, 8, 64


def _int8_matmul(path, wq: np.ndarray, col: np.ndarray) -> None:
    """x (1, T, K) -> MatMul with DequantizeLinear(int8 weight, per-column scale): the shape of int8-openvino's."""
    g = helper.make_graph(
        [
            helper.make_node("DequantizeLinear", ["wq", "col"], ["w"], axis=1),
            helper.make_node("MatMul", ["x", "w"], ["y"], name="/dense/MatMul"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, T, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, T, N])],
        [numpy_helper.from_array(wq, "wq"), numpy_helper.from_array(col, "col")],
    )
    onnx.save_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]), str(path))


def _run(path, x: np.ndarray) -> np.ndarray:
    """As written: onnxruntime's own rewrites would re-quantise the int8-weight MatMul its own way."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.fixture
def outlier_case(tmp_path):
    rng = np.random.default_rng(0)
    wq = rng.integers(-127, 128, (K, N)).astype(np.int8)
    col = np.full(N, 0.01, np.float32)
    x = rng.normal(size=(1, T, K)).astype(np.float32)
    x[..., 3] *= 200  # one channel two orders of magnitude above the rest, as FFN-down inputs have
    rows = x.reshape(-1, K)
    stats = {"x": (float(rows.min()), float(rows.max()), rows.reshape(-1), rows.min(0), rows.max(0))}
    src = tmp_path / "src.onnx"
    _int8_matmul(src, wq, col)
    w = wq.astype(np.float32) * col
    return src, x, stats, x @ w, w


def test_a_static_scale_loses_small_channels_to_one_outlier_and_the_split_keeps_them(outlier_case, tmp_path):
    src, x, stats, exact, w = outlier_case
    rest = np.delete(x, 3, axis=-1) @ np.delete(w, 3, axis=0)  # what the 31 ordinary channels contribute
    err = {}
    for split in (0, 1):
        out = tmp_path / f"split{split}.onnx"
        write_static(src, out, stats, {"/dense/MatMul"}, "minmax", split={"/dense/MatMul": split} if split else None)
        y = _run(out, x)
        assert np.isfinite(y).all()
        err[split] = float(np.abs(y - exact).max() / np.abs(rest).max())
        ops = [n.op_type for n in onnx.load(str(out)).graph.node]
        assert ops.count("QuantizeLinear") == 1 and ("Gather" in ops) == bool(split)
    # one static step spans the outlier's range without the split; with it, the step fits the other channels
    assert err[1] < 0.05 and err[0] > 0.5, err


def test_the_split_takes_the_outlier_channel_out_of_the_int8_weights(outlier_case, tmp_path):
    src, _, stats, _, _ = outlier_case
    out = tmp_path / "split.onnx"
    write_static(src, out, stats, {"/dense/MatMul"}, "minmax", split={"/dense/MatMul": 1})
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(out)).graph.initializer}
    assert not inits["wq"][3].any() and inits["wq"][np.arange(K) != 3].any()
    (idx,) = [v for k, v in inits.items() if k.endswith("_idx")]
    assert idx.tolist() == [3]


def test_fully_connected_nodes_are_named_by_their_place_in_the_layer():
    ours = [f"fc{i}" for i in range(12)]  # Q, K, V separate: 6 per layer
    kinds = fc_kinds(ours, 2)
    assert [kinds[n] for n in ours[:6]] == [ROWS[0]] * 3 + list(ROWS[1:4]) and kinds["fc6"] == ROWS[0]
    fused = [f"n{i}" for i in range(8)]  # NNCF's graph reads the fused file: one Q, K, V node, 4 per layer
    assert [fc_kinds(fused, 2)[n] for n in fused] == list(ROWS[:4]) * 2
    with pytest.raises(ValueError, match="7 fully-connected nodes do not split into 2 layers"):
        fc_kinds([f"x{i}" for i in range(7)], 2)


def test_the_profile_table_shows_each_row_and_the_gap_to_nncf():
    per = {
        s: {"wall": w, **dict.fromkeys(ROWS, w / len(ROWS))}
        for s, w in (
            ("int8-openvino (shipped)", 10.0),
            ("every MatMul static (fails the gate)", 7.0),
            ("NNCF int8", 8.0),
        )
    }
    res = {"systems": dict.fromkeys(per, ""), "shapes": {"8x128": per}}
    md = profile_table(res)
    assert "| wall | 10.0 | 7.0 | 8.0 | +2.0 |" in md
    assert all(f"| {row} |" in md for row in ROWS)
