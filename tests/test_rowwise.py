"""The row-wise int8 rewrite: GPTQ rounding and the ONNX graph checked against the numpy model of it."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from rosberta_export import rowwise  # noqa: E402
from rosberta_export.rowwise import Calibration, fake_quant, gptq_round, gptq_setup, plan_matmul  # noqa: E402
from rosberta_export.rowwise_graph import quantize_rowwise  # noqa: E402
from rosberta_export.unsigned_int8 import unsigned_weights  # noqa: E402
from rosberta_onnx.hardware import cpu_isa, int8_native  # noqa: E402


def _correlated_rows(rng, n, k):
    """Inputs with a few large, correlated directions, as transformer activations have."""
    basis = rng.normal(size=(k, k)) * np.geomspace(8.0, 0.1, k)[:, None]
    return (rng.normal(size=(n, k)) @ basis).astype(np.float32)


@pytest.mark.torch  # GPTQ's factorisation is scipy's LAPACK (the export extra)
def test_gptq_rounding_moves_the_outputs_less_than_rounding_to_nearest():
    rng = np.random.default_rng(0)
    x, w = _correlated_rows(rng, 4000, 96), rng.normal(size=(96, 48)).astype(np.float32)
    col = (np.abs(w).max(axis=0) / 127.0).astype(np.float32)
    rtn = np.clip(np.rint(w / col), -127, 127)
    gq = gptq_round(w, x.T.astype(np.float64) @ x, col)
    assert gq.dtype == np.int8 and np.abs(gq.astype(int)).max() <= 127
    assert np.abs(gq.astype(int) - rtn).max() <= 2  # error feedback nudges steps, it does not rescale
    err = lambda q: np.linalg.norm(x @ (w - q * col))
    held_out = _correlated_rows(np.random.default_rng(0), 4000, 96)  # same distribution, new rows
    assert err(gq) < 0.7 * err(rtn)
    assert np.linalg.norm(held_out @ (w - gq * col)) < 0.8 * np.linalg.norm(held_out @ (w - rtn * col))


@pytest.mark.torch
@pytest.mark.parametrize("lazy,inner", [(128, 16), (32, 16), (24, 5), (16, 1)])
def test_gptq_batches_are_the_row_by_row_recursion_in_another_order(monkeypatch, lazy, inner):
    """Lazy and inner batches (ragged ones included: 70 rows) only regroup GPTQ's sums: the codes are those of the
    plain recursion that pushes each row's error onto every later row at once."""
    monkeypatch.setattr(rowwise, "GPTQ_INNER", inner)
    rng = np.random.default_rng(3)
    x, w = _correlated_rows(rng, 2000, 70), rng.normal(size=(70, 40)).astype(np.float32)
    gram, col = x.T.astype(np.float64) @ x, (np.abs(w).max(axis=0) / 127.0).astype(np.float32)
    u, wk = gptq_setup(w, gram, 0.01)
    c, want = col.astype(np.float64), np.empty(w.shape, dtype=np.int8)
    for r in range(len(wk)):
        want[r] = np.clip(np.rint(wk[r] / c), -127, 127)
        wk[r + 1 :] -= np.outer(u[r, r + 1 :], (wk[r] - want[r] * c) / u[r, r])
    got = gptq_round(w, gram, col, block=lazy)
    assert np.array_equal(got, want), int((got != want).sum())


@pytest.mark.torch
def test_gptq_setup_is_the_upper_factor_of_the_damped_inverse_hessian():
    """U upper triangular with U^T U = (H + damp * mean(diag H) * I)^-1, where H is X^T X with the inputs calibration
    never saw (all-zero columns) given a unit diagonal, and those inputs' weight rows zeroed."""
    rng = np.random.default_rng(1)
    x = _correlated_rows(rng, 500, 64).astype(np.float64)
    x[:, 5] = 0.0  # an input channel calibration never saw
    gram, w = x.T @ x, rng.normal(size=(64, 8)).astype(np.float32)
    u, wk = gptq_setup(w, gram, 0.01)
    h = gram.copy()
    h[5, 5] = 1.0
    h += 0.01 * np.mean(np.diag(h)) * np.eye(64)
    assert np.allclose(np.triu(u), u) and (np.diag(u) > 0).all()
    assert np.allclose(u.T @ u, np.linalg.inv(h), rtol=1e-9, atol=1e-12 * np.abs(np.linalg.inv(h)).max())
    assert (wk[5] == 0).all() and np.array_equal(np.delete(wk, 5, 0), np.delete(w, 5, 0).astype(np.float64))


def test_x_t_x_gathered_over_batches_is_the_sum_of_every_batch_s(monkeypatch):
    """X^T X is updated every GRAM_ROWS token rows: whatever the batches' sizes, the sum over every unpadded row."""
    monkeypatch.setattr(rowwise, "GRAM_ROWS", 50)
    rng = np.random.default_rng(2)
    stats = rowwise._Stats(keep_rows=0, grams=True)
    want = np.zeros((8, 8))
    for rows in (7, 30, 40, 3, 90, 11):
        v, mask = rng.normal(size=(1, rows, 8)).astype(np.float32), np.ones((1, rows), dtype=np.int64)
        mask[0, rows // 2 :] = rng.integers(0, 2, size=rows - rows // 2)  # some padded rows
        r = v[0][mask[0].astype(bool)].astype(np.float64)
        want += r.T @ r
        stats.add(["t"], [v], mask)
    got = stats.calibration().grams["t"]
    assert got.dtype == np.float32 and np.allclose(got, want, rtol=1e-5, atol=1e-4)


def _linear_graph(path, w1, b1, w2, b2, w3):
    """x -> MatMul w1 -> Add b1 -> Relu - 0.15 -> MatMul w2 -> Add b2 -> y, and the same r1 -> MatMul w3 -> z
    (no bias). r1 never goes below -0.15, as GELU's output never goes below -0.17, so it takes the shifted
    path; w2 and w3 read the same input, as Q, K and V do."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="mm1"),
        helper.make_node("Add", ["h1", "b1"], ["a1"], name="add1"),
        helper.make_node("Relu", ["a1"], ["p1"], name="relu"),
        helper.make_node("Add", ["p1", "c"], ["r1"], name="lower"),
        helper.make_node("MatMul", ["r1", "w2"], ["h2"], name="mm2"),
        helper.make_node("Add", ["h2", "b2"], ["y"], name="add2"),
        helper.make_node("MatMul", ["r1", "w3"], ["z"], name="mm3"),
    ]
    inits = [
        numpy_helper.from_array(a, n)
        for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (w3, "w3"), (np.array(-0.15, np.float32), "c"))
    ]
    g = helper.make_graph(
        nodes,
        "lin",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, w1.shape[0]])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("y", "z", "r1")],
        inits,
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.torch
@pytest.mark.parametrize("blocked,merge", [(True, True), (True, False), (False, True)])
def test_rowwise_graph_computes_what_the_numpy_model_says(tmp_path, blocked, merge):
    rng = np.random.default_rng(1)
    k, h, n, m = 64, 96, 32, 24
    w1, b1 = rng.normal(size=(k, h)).astype(np.float32) * 0.2, rng.normal(size=h).astype(np.float32)
    w2, b2 = rng.normal(size=(h, n)).astype(np.float32) * 0.2, rng.normal(size=n).astype(np.float32)
    w3 = rng.normal(size=(h, m)).astype(np.float32) * 0.2
    _linear_graph(tmp_path / "raw.onnx", w1, b1, w2, b2, w3)
    x = _correlated_rows(rng, 3 * 40, k)
    x[:, 5] *= 30.0  # an outlier channel for the smoothing to move into the weights
    r1 = np.maximum(x @ w1 + b1, 0.0) - 0.15
    cal = Calibration(
        ranges={"x": (x.min(0), x.max(0)), "r1": (r1.min(0), r1.max(0))},
        samples={},
        grams={"x": x.T.astype(np.float64) @ x, "r1": r1.T.astype(np.float64) @ r1},
    )
    quantize_rowwise(
        tmp_path / "raw.onnx", tmp_path / "q.onnx", cal=cal, alpha=0.65, blocked_quantize=blocked, merge_shared=merge
    )
    q = onnx.load(str(tmp_path / "q.onnx"))
    ops = [nd.op_type for nd in q.graph.node]
    assert "MatMul" not in ops
    assert ops.count("MatMulIntegerToFloat") == (2 if merge else 3) and ops.count("Split") == (1 if merge else 0)
    assert ops.count("QuantizeLinear") == (2 if merge else 3)  # w2 and w3 share one quantised input when merged
    assert ops.count("Sub") == 1  # mm2's shift correction went into add2's bias; mm3 has no bias to take it
    if not int8_native(cpu_isa()):
        # without VNNI onnxruntime's U8xS8 kernel saturates (by design: int8-avx2 exists for that); the same graph
        # with its weights stored unsigned is exact there, so the numbers are checked on that twin
        assert unsigned_weights(q.graph) == ops.count("MatMulIntegerToFloat")
        onnx.save(q, str(tmp_path / "q.onnx"))
    sess = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    y_q, z_q, r1_q = sess.run(None, {"x": x.reshape(3, 40, k)})

    def plan(w, t):
        return plan_matmul(w, cal.ranges[t], alpha=0.65, shift_floor=-0.2, gram=cal.grams[t])

    p1 = plan(w1, "x")
    r1_model = np.maximum(fake_quant(x, p1) + b1, 0.0) - 0.15
    np.testing.assert_allclose(r1_q.reshape(-1, h), r1_model, rtol=1e-4, atol=1e-4)
    r1_rows = r1_q.reshape(-1, h)
    if merge:  # one plan over the concatenated weights, its columns handed out in order
        p23 = plan(np.concatenate([w2, w3], axis=1), "r1")
        assert p1.shift is None and p23.shift is not None and p23.corr.std() > 0.1  # signed vs shifted
        y_model, z_model = np.split(fake_quant(r1_rows, p23), [n], axis=1)
    else:
        p2, p3 = plan(w2, "r1"), plan(w3, "r1")
        assert p1.shift is None and p2.shift is not None
        y_model, z_model = fake_quant(r1_rows, p2), fake_quant(r1_rows, p3)
    np.testing.assert_allclose(y_q.reshape(-1, n), y_model + b2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(z_q.reshape(-1, m), z_model, rtol=1e-4, atol=1e-4)
    # and the int8 graph is close to fp32 (row scales keep the outlier channel from swamping the rest)
    for got, ref in ((y_q.reshape(-1, n), r1 @ w2 + b2), (z_q.reshape(-1, m), r1 @ w3)):
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.02


def test_keep_fp32_without_calibration_rows_is_refused_with_the_fix(tmp_path):
    from rosberta_export.quantize import quantize_int8

    rng = np.random.default_rng(2)
    w = rng.normal(size=(8, 8)).astype(np.float32)
    _linear_graph(tmp_path / "raw.onnx", w, np.zeros(8, np.float32), w, np.zeros(8, np.float32), w)
    x = rng.normal(size=(16, 8)).astype(np.float32)
    cal = Calibration(ranges={"x": (x.min(0), x.max(0))}, samples={}, grams={})
    with pytest.raises(ValueError, match=r"keep_rows=\d+"):
        quantize_int8(tmp_path / "raw.onnx", tmp_path / "q.onnx", recipe="rowwise-sq", keep_fp32=1, cal=cal)
    assert not (tmp_path / "q.onnx").exists()


def test_calibration_batches_group_similar_lengths_and_keep_every_text_once(runtime_artifact):
    """Sorted by length before batching: every text once, little padding, and a fixed batch order that is not the
    sorted one (the first batches, where sensitivity rows are kept, span the lengths)."""
    from rosberta_export.quantize import calibration_batches, calibration_texts
    from rosberta_onnx.manifest import Manifest
    from rosberta_onnx.tokenize import TextTokenizer

    facts = Manifest.read(runtime_artifact).model
    tok = TextTokenizer(runtime_artifact / "tokenizer.json", max_length=facts.max_length, pad_id=facts.pad_token_id)
    texts = calibration_texts(256)
    batches = calibration_batches(tok, texts, 16)
    again = calibration_batches(tok, texts, 16)
    assert all((a[0] == b[0]).all() and (a[1] == b[1]).all() for a, b in zip(batches, again, strict=True))
    got = sorted(list(row[m.astype(bool)]) for ids, mask in batches for row, m in zip(ids, mask))
    assert got == sorted(tok.tokenize(texts).ids)

    def padding(bs):
        return 1 - sum(int(m.sum()) for _, m in bs) / sum(m.size for _, m in bs)

    in_order = [tok.pad(tok.tokenize(texts[i : i + 16]).ids) for i in range(0, len(texts), 16)]
    assert padding(batches) < padding(in_order) / 3, (padding(batches), padding(in_order))
    widths = [m.shape[1] for _, m in batches]
    assert widths != sorted(widths)
