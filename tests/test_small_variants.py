"""The edge variants' building blocks: int8 embedding tables, 4-bit MatMul weights (MatMulNBits), and the int4
variant through the runtime (loads, encodes, is taken by ``auto`` only when its gate passed)."""

import json
import shutil

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from rosberta_export.embedding_int8 import quantize_embedding_tables  # noqa: E402
from rosberta_export.int4 import Int4Settings, pack_blocks, plan_int4, quantize_blocks, write_int4  # noqa: E402
from rosberta_onnx import Encoder, Manifest  # noqa: E402
from rosberta_onnx.manifest import GATED_VARIANTS  # noqa: E402


def _run(model, feeds: dict) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def _gather_model(table: np.ndarray, small: np.ndarray):
    """ids -> (table[ids], small[ids % rows]): one large and one small embedding table."""
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "s"])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", "s", table.shape[1]])
    small_rows = np.array([small.shape[0]], dtype=np.int64)
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["big"], name="word_embeddings"),
        helper.make_node("Mod", ["ids", "small_rows"], ["small_ids"]),
        helper.make_node("Gather", ["small", "small_ids"], ["little"], name="token_type_embeddings"),
        helper.make_node("Add", ["big", "little"], ["out"]),
    ]
    inits = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(small, "small"),
        numpy_helper.from_array(small_rows, "small_rows"),
    ]
    graph = helper.make_graph(nodes, "emb", [ids], [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_int8_embedding_rows_are_within_half_a_step_of_the_table_and_small_tables_stay_float():
    rng = np.random.default_rng(0)
    table = (rng.normal(size=(1000, 48)) * rng.uniform(0.01, 2.0, size=(1000, 1))).astype(np.float32)
    table[7] = 0.0  # an all-zero row (padding) stays exactly zero
    small = rng.normal(size=(2, 48)).astype(np.float32)
    model = _gather_model(table, small)
    ids = rng.integers(0, 1000, size=(3, 50)).astype(np.int64)
    ids[0, 0] = 7
    want = _run(model, {"ids": ids})

    assert quantize_embedding_tables(model.graph) == 1  # the 2-row table is left alone
    onnx.checker.check_model(model)
    kept = {i.name: i for i in model.graph.initializer}
    assert "table" not in kept and kept["table_int8"].data_type == TensorProto.INT8
    assert kept["small"].data_type == TensorProto.FLOAT
    got = _run(model, {"ids": ids})

    step = np.abs(table).max(axis=1) / 127.0
    err = np.abs(got - want)
    assert (err <= step[ids][..., None] / 2 + 1e-6).all()
    assert err.max() > 0  # it did quantise
    assert (got[0, 0] == small[7 % 2]).all()  # row 7 is zero: only the small table's row remains


def _matmul_model(w: np.ndarray, path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", w.shape[0]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", w.shape[1]])
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="/dense/MatMul")
    graph = helper.make_graph([node], "mm", [x], [y], [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


@pytest.mark.parametrize("k", [96, 80])  # 80: a last block of 16 values, padded in the packed weight
def test_matmulnbits_graph_computes_the_dequantised_product(tmp_path, k):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(k, 24)).astype(np.float32)
    w[:, 3] = 0.0  # a zero column: scale 1, zero point exact
    raw = _matmul_model(w, tmp_path / "mm.onnx")
    x = rng.normal(size=(5, k)).astype(np.float32)
    for level in (0, 4):
        s = Int4Settings(block=32, accuracy_level=level, gptq=False)
        blocks = plan_int4(raw, None, s)
        q = blocks["/dense/MatMul"]
        assert q.codes.max() <= 15 and q.scales.shape == (-(-k // 32), 24)
        model = write_int4(raw, blocks, s)
        assert [n.op_type for n in model.graph.node] == ["MatMulNBits"]
        assert {i.name for i in model.graph.initializer}.isdisjoint({"w"})  # the float weight is gone
        want = x @ q.dequantize()
        got = _run(model, {"x": x})
        # fp32 activations: the dequantised product; level 4 quantises activations to int8 per block as well
        tol = 1e-4 if level == 0 else 2e-2
        assert np.abs(got - want).max() <= tol * np.abs(want).max(), level
        assert np.abs(got[:, 3]).max() == 0.0
    rel = np.linalg.norm(q.dequantize() - w) / np.linalg.norm(w)
    assert 0.01 < rel < 0.12  # 4 bits: a few percent of the weight


def test_packed_layout_is_low_nibble_first_along_k():
    codes = np.arange(64, dtype=np.uint8).reshape(64, 1) % 16  # K = 64, N = 1: codes 0..15, 0..15, ...
    q = quantize_blocks(np.zeros((64, 1), np.float32), block=32)
    q = type(q)(codes, q.scales, np.array([[3], [12]], np.uint8), 32)
    packed, scales, zeros = pack_blocks(q)
    assert packed.shape == (1, 2, 16) and scales.shape == (1, 2) and zeros.shape == (1, 1)
    assert packed[0, 0, 0] == 0 | (1 << 4) and packed[0, 0, 7] == 14 | (15 << 4)
    assert zeros[0, 0] == 3 | (12 << 4)


def _correlated_rows(rng, n, k):
    basis = rng.normal(size=(k, k)) * np.geomspace(8.0, 0.1, k)[:, None]
    return (rng.normal(size=(n, k)) @ basis).astype(np.float32)


@pytest.mark.torch  # GPTQ's factorisation is scipy's LAPACK (the export extra)
def test_gptq_blocks_move_the_outputs_less_than_rounding_to_nearest():
    rng = np.random.default_rng(2)
    x = _correlated_rows(rng, 2048, 128)
    w = rng.normal(size=(128, 64)).astype(np.float32)
    exact = x @ w
    rtn = quantize_blocks(w, block=32)
    gptq = quantize_blocks(w, (x.T.astype(np.float64) @ x), block=32)
    err_rtn = np.linalg.norm(x @ rtn.dequantize() - exact)
    err_gptq = np.linalg.norm(x @ gptq.dequantize() - exact)
    assert err_gptq < 0.7 * err_rtn, (err_gptq, err_rtn)


@pytest.mark.torch
@pytest.mark.parametrize("block,lazy", [(16, 64), (32, 128), (32, 48)])
def test_gptq_blocks_are_the_row_by_row_recursion_in_another_order(block, lazy):
    """Lazy and inner batches only regroup the sums: codes, scales and zero points are those of the plain recursion,
    where each block's parameters come from its rows with every earlier row's error pushed onto them (112 rows: a
    ragged last batch)."""
    from rosberta_export.int4 import _block_params
    from rosberta_export.rowwise import gptq_setup

    rng = np.random.default_rng(4)
    x, w = _correlated_rows(rng, 2048, 112), rng.normal(size=(112, 24)).astype(np.float32)
    gram = x.T.astype(np.float64) @ x
    u, wk = gptq_setup(w, gram, 0.01)
    codes, scales, zeros = np.empty(w.shape, np.uint8), [], []
    for r in range(len(wk)):
        if r % block == 0:
            s, z = _block_params(wk[r : r + block], 15)
            scales.append(s)
            zeros.append(z)
        codes[r] = np.clip(np.rint(wk[r] / s) + z, 0, 15)
        wk[r + 1 :] -= np.outer(u[r, r + 1 :], (wk[r] - (codes[r] - z) * s) / u[r, r])
    got = quantize_blocks(w, gram, block=block, lazy=lazy)
    assert np.array_equal(got.codes, codes), int((got.codes != codes).sum())
    assert np.array_equal(got.scales, np.array(scales, np.float32)) and np.array_equal(got.zeros, np.array(zeros))


def test_int4_settings_refuse_what_matmulnbits_cannot_run():
    with pytest.raises(ValueError, match="power of two >= 16"):
        Int4Settings(block=24, accuracy_level=4, gptq=True)
    with pytest.raises(ValueError, match="accuracy_level 7"):
        Int4Settings(block=32, accuracy_level=7, gptq=True)
    with pytest.raises(ValueError, match="3 bits"):
        quantize_blocks(np.zeros((32, 2), np.float32), bits=3)


def test_int4_variant_loads_encodes_and_is_recorded(runtime_artifact):
    m = Manifest.read(runtime_artifact)
    rec = m.variant("int4")
    assert rec.file == "model_int4.onnx" and rec.gate and "recipe" in rec.gate
    assert rec.size_bytes < m.variant("int8").size_bytes < m.variant("fp32").size_bytes
    texts = ["Привет, мир", "hello world", ""]
    enc = Encoder.load(runtime_artifact, variant="int4")
    got = enc.encode(texts)
    assert np.isfinite(got).all() and np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    fp32 = Encoder.load(runtime_artifact, variant="fp32").encode(texts)
    assert (got * fp32).sum(1).min() > 0.99


def _gates(src, dst, **passed: bool):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".autotune.json"))
    d = json.loads((dst / "manifest.json").read_text())
    for v, ok in passed.items():
        d["variants"][v]["gate"]["passed"] = ok
    (dst / "manifest.json").write_text(json.dumps(d))
    return dst


def test_auto_takes_int4_only_when_it_passed_its_gate(runtime_artifact, tmp_path):
    int8s = {v: False for v in GATED_VARIANTS if v != "int4" and v in Manifest.read(runtime_artifact).variants}
    only_int4 = _gates(runtime_artifact, tmp_path / "a", **int8s, int4=True)
    assert Encoder.load(only_int4, autotune=False).variant == "int4"
    neither = _gates(runtime_artifact, tmp_path / "b", **int8s, int4=False)
    assert Encoder.load(neither, autotune=False).variant == "fp32"
    # named explicitly it still runs, whatever its gate said
    assert Encoder.load(neither, variant="int4").variant == "int4"
