"""Dynamic int8 with one activation scale per row (per token), from standard ONNX ops.

onnxruntime's dynamic quantisation gives each activation tensor a single scale: one outlier token
sets the step for every token in the batch. On real trained weights (MiniLM) that costs cosine
0.976 min against fp32. Here each MatMul with a constant weight ``W (K, N)`` becomes::

    x'     = x / s_smooth (+ shift)                  calibrated per input channel (see below)
    s_row  = max(|x'|, axis=-1) / 127                one scale per token (row of x)
    x_q    = QuantizeLinear(x', s_row, 128)          uint8, symmetric around 128 (opset-21 blocked
                                                     quantisation, block = the row)
    y      = MatMulIntegerToFloat(x_q, W_q, 128, s_col) * s_row  (- shift @ W, folded into the bias)

U8 activations x S8 weights is the combination VNNI (and AMX) multiply natively. Attention's
activation x activation MatMuls stay in fp32, as in onnxruntime's own dynamic recipe.

Calibration (each MatMul input over the calibration sentences) adds:

- smoothing (SmoothQuant): channel outliers move into the weights, x / s and s * W with
  s = max|x|^a / max|W|^(1-a), so one outlier channel no longer coarsens every other channel's step;
- a shift for inputs that are (almost) never negative — GELU's output, whose minimum is -0.17 —
  so they use the whole 0..255 range instead of half of it; ``shift @ W`` is subtracted exactly;
- GPTQ weight rounding: with ``X^T X`` of the calibration inputs, each input row of ``W`` is rounded
  in turn and its rounding error pushed onto the rows not yet rounded, so ``x @ W`` moves least.
  On MiniLM, weights alone rounded to nearest (fp32 activations) already cost the RU retrieval
  criterion (top-10 overlap 0.956); GPTQ is what lifts the full recipe over it;
- a sensitivity ranking: each MatMul's relative output error, simulated in numpy on calibration
  rows, so the few worst can be left in fp32 by measurement rather than by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "ROWWISE_RECIPE",
    "Plan",
    "plan_matmul",
    "plan_weights",
    "gptq_round",
    "gptq_setup",
    "gptq_feedback",
    "fake_quant",
    "Calibration",
    "channel_stats",
    "sensitivity",
    "weight_matmuls",
]

ROWWISE_RECIPE = (
    "dynamic int8, per-row activation scales: MatMul weights S8 per output column, activations U8 "
    "with one scale per token (U8S8, MatMulIntegerToFloat), fp32 attention scores and elsewhere"
)


def weight_matmuls(graph) -> list:
    """The MatMul nodes of ``graph`` whose weight (second input) is a 2-D initializer: what int8 rewrites."""
    inits = {i.name: i for i in graph.initializer}
    return [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in inits and len(inits[n.input[1]].dims) == 2]


@dataclass(frozen=True)
class Plan:
    """How one MatMul is quantised."""

    inv_smooth: np.ndarray | None  # (K,) multiply x by this first
    shift: np.ndarray | None  # (K,) then add this (unsigned range)
    wq: np.ndarray  # (K, N) int8
    col: np.ndarray  # (N,) weight scale per output column
    corr: np.ndarray | None  # (N,) shift @ dequantised W, subtracted after the product


def plan_matmul(
    w: np.ndarray,
    rng: tuple[np.ndarray, np.ndarray] | None,
    *,
    alpha: float,
    shift_floor: float,
    gram: np.ndarray | None = None,
) -> Plan:
    """Smoothing, shift and int8 weights for one MatMul; with ``gram`` (X^T X of its calibration inputs)
    the weights are rounded with error feedback (:func:`gptq_round`) instead of to nearest."""
    inv_smooth = shift = corr = None
    w = w.astype(np.float32)
    if rng is not None:
        lo, hi = (r.astype(np.float32) for r in rng)
        xmax = np.maximum(np.maximum(np.abs(lo), np.abs(hi)), 1e-5)
        wmax = np.maximum(np.abs(w).max(axis=1), 1e-5)
        sc = np.clip(xmax**alpha / wmax ** (1.0 - alpha), 1e-2, 1e2).astype(np.float32)
        w = w * sc[:, None]
        inv_smooth = (1.0 / sc).astype(np.float32)
        if lo.min() >= shift_floor:
            shift = (np.maximum(-lo, 0.0) / sc).astype(np.float32)
    col = np.abs(w).max(axis=0) / 127.0
    col = np.where(col > 0, col, 1.0).astype(np.float32)
    if gram is not None:
        h = gram if inv_smooth is None else gram * np.outer(inv_smooth, inv_smooth)  # X^T X of the smoothed input
        wq = gptq_round(w, h, col)
    else:
        wq = np.clip(np.rint(w / col), -127, 127).astype(np.int8)
    if shift is not None:
        corr = (shift.astype(np.float64) @ (wq.astype(np.float64) * col[None, :])).astype(np.float32)
    return Plan(inv_smooth, shift, wq, col, corr)


def plan_weights(
    raw: Path,
    cal: Calibration | None,
    *,
    alpha: float,
    shift_floor: float,
    gptq: bool = True,
    inputs: Collection[str] | None = None,
) -> dict[str, Plan]:
    """:func:`plan_matmul` for every constant-weight MatMul of ``raw``, by node name. GPTQ rounding is
    the slow part of an int8 export (minutes on the full-size model), so the plans are made once and
    shared by everything built from them: the sensitivity ranking, the onnxruntime graph and the
    OpenVINO twin (:mod:`.openvino_int8`, which uses the same weights, smoothing included). ``gptq`` False rounds
    to nearest even when the calibration has X^T X (taken for another variant). ``inputs``: only the MatMuls that
    read one of these tensors (one calibration segment's)."""
    import onnx

    from .weights_io import read_initializer

    graph = onnx.load(str(raw), load_external_data=False).graph  # the weights are read one at a time
    inits = {i.name: i for i in graph.initializer}
    return {
        n.name: plan_matmul(
            read_initializer(raw, inits[n.input[1]]),
            cal.ranges.get(n.input[0]) if cal else None,
            alpha=alpha,
            shift_floor=shift_floor,
            gram=cal.grams.get(n.input[0]) if cal and gptq else None,
        )
        for n in weight_matmuls(graph)
        if inputs is None or n.input[0] in inputs
    }


GPTQ_INNER = 16  # rows whose rounding errors are pushed one by one (see gptq_feedback)


def gptq_setup(w: np.ndarray, gram: np.ndarray, damp: float) -> tuple[np.ndarray, np.ndarray]:
    """GPTQ's starting point: the upper Cholesky factor of the damped inverse Hessian (``gram`` = X^T X), and
    ``w`` in float64 with the rows of inputs never seen in calibration zeroed."""
    from scipy.linalg import lapack

    h = gram.astype(np.float64)
    diag = np.einsum("ii->i", h)  # a writable view of the diagonal
    dead = diag <= 0
    diag[dead] = 1.0
    diag += damp * float(np.mean(diag))
    wk = w.astype(np.float64)
    wk[dead] = 0.0
    # H = R R^T with R upper: R = J L J, where J reverses the order of rows (columns) and L L^T = J H J is the
    # ordinary lower Cholesky factorisation of H reversed. Then H^-1 = R^-T R^-1, so the upper factor wanted is
    # U = R^-1 = J L^-1 J: one factorisation and one triangular inverse (LAPACK's potrf and trtri), instead of an
    # inverse and a second factorisation. The same matrix to ~1e-15; 0.9 s instead of 3.8 s for an FFN-down
    # Hessian of 4096 inputs (Zen 4), the largest share of planning the full-size model's weights.
    # J H J is symmetric, so its C-ordered copy, transposed, is the Fortran-ordered matrix LAPACK works on in place.
    lower, info = lapack.dpotrf(np.ascontiguousarray(h[::-1, ::-1]).T, lower=1, clean=1, overwrite_a=1)
    if info == 0:
        lower, info = lapack.dtrtri(lower, lower=1, overwrite_c=1)
    if info != 0:
        raise ValueError(
            f"GPTQ: the damped Hessian of a {len(h)}-input weight is not positive definite (LAPACK info {info}): "
            f"its calibration inputs hold NaN or Inf, or damp={damp} is too small"
        )
    # ``lower`` is Fortran-ordered: its memory holds (L^-1)^T row by row, and reversed in place that is U^T, a cheap
    # contiguous copy; U is returned as the (Fortran-ordered) transpose of it (a transposing copy costs 10x more)
    return np.ascontiguousarray(lower.T[::-1, ::-1]).T, wk


def gptq_feedback(
    wk: np.ndarray,
    u: np.ndarray,
    dequantize_row: Callable[[int, np.ndarray], np.ndarray],
    *,
    lazy: int = 128,
    inner: int | None = None,
) -> None:
    """GPTQ's error feedback over ``wk`` (K, N; changed in place) with ``u`` from :func:`gptq_setup`: row by row,
    ``dequantize_row(r, rows)`` rounds row ``r`` and returns its dequantised value; the rounding error is pushed onto
    the rows not yet rounded. ``rows`` are row ``r`` and the rest of its inner batch (below) as the feedback has left
    them: every earlier row's error is in them.

    GPTQ's lazy batches: the rows of a batch of ``lazy`` take each error as it comes, the rows after the batch take
    its errors in one product. Within a batch the same again, with inner batches of ``inner`` rows (default
    :data:`GPTQ_INNER`): a row's error is pushed one by one onto the rows left in its inner batch, and onto the rest
    of the batch in one product per inner batch. The same sums in another order: pushed row by row over the whole
    batch, the updates spent their time reading and writing memory (4x slower at 1024 x 1024)."""
    k, n = wk.shape
    inner = min(inner or GPTQ_INNER, lazy)
    for a in range(0, k, lazy):
        b = min(a + lazy, k)
        wb, err, ub = wk[a:b].copy(), np.empty((b - a, n)), u[a:b, a:b]
        for c in range(0, b - a, inner):
            d = min(c + inner, b - a)
            for i in range(c, d):
                err[i] = (wb[i] - dequantize_row(a + i, wb[i:d])) / ub[i, i]
                wb[i + 1 : d] -= ub[i, i + 1 : d, None] * err[i]
            wb[d:] -= ub[c:d, d:].T @ err[c:d]
        wk[b:] -= u[a:b, b:].T @ err


def gptq_round(w: np.ndarray, gram: np.ndarray, col: np.ndarray, *, block: int = 128, damp: float = 0.01) -> np.ndarray:
    """Round ``w`` (K, N) to int8 steps ``col`` (N,) one input row at a time, pushing each row's rounding
    error onto the rows not yet rounded so that ``x @ W`` over the calibration inputs (``gram`` = X^T X)
    moves as little as possible (GPTQ, Frantar et al. 2022, with the per-column scales kept fixed)."""
    u, wk = gptq_setup(w, gram, damp)
    c = col.astype(np.float64)
    q = np.empty(w.shape, dtype=np.int8)

    def dequantize_row(r: int, rows: np.ndarray) -> np.ndarray:
        qr = np.clip(np.rint(rows[0] / c), -127, 127)
        q[r] = qr
        return qr * c

    gptq_feedback(wk, u, dequantize_row, lazy=block)
    return q


def fake_quant(x: np.ndarray, p: Plan) -> np.ndarray:
    """What the quantised graph computes for rows ``x`` (n, K), in numpy."""
    if p.inv_smooth is not None:
        x = x * p.inv_smooth
    if p.shift is not None:
        x = x + p.shift
        s = np.maximum(x.max(axis=1, keepdims=True) / 255.0, 1e-10)
        q = np.clip(np.rint(x / s), 0, 255)
    else:
        s = np.maximum(np.abs(x).max(axis=1, keepdims=True) / 127.0, 1e-10)
        q = np.clip(np.rint(x / s), -128, 127)
    y = (q @ p.wq.astype(np.float32)) * s * p.col
    return y - p.corr if p.corr is not None else y


@dataclass
class Calibration:
    """What calibration text shows about each MatMul input tensor (padded positions excluded)."""

    ranges: dict[str, tuple[np.ndarray, np.ndarray]]  # per-channel (min, max)
    samples: dict[str, np.ndarray]  # up to keep_rows token rows
    grams: dict[str, np.ndarray]  # X^T X over every calibration token (when asked for)
    segments: int = 0  # how many graph segments it ran through one at a time (0: the whole graph at once)


GRAM_ROWS = 4096  # token rows gathered before each X^T X update


class _Stats:
    """Per-channel ranges, kept rows and X^T X of named tensors, accumulated batch by batch.

    X^T X is updated once per ~``GRAM_ROWS`` token rows, not once per batch: a batch has a few hundred rows, and each
    update reads and writes the whole accumulator (64 MB for a 4096-wide input), so per batch the updates cost more
    than the products (at full size, 128 sentences: 40 s of calibration against ~20 s of the model's forward)."""

    def __init__(self, keep_rows: int, grams: bool) -> None:
        self.keep_rows, self.grams_wanted = keep_rows, grams
        self.ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.rows: dict[str, list[np.ndarray]] = {}
        self.grams: dict[str, np.ndarray] = {}
        self.pending: dict[str, list[np.ndarray]] = {}  # rows not yet in X^T X
        self.kept = 0

    def add(self, names: list[str], values: list[np.ndarray], mask: np.ndarray) -> None:
        keep = mask.astype(bool)
        take = max(0, min(self.keep_rows - self.kept, int(keep.sum())))
        for name, v in zip(names, values):
            r = v[keep]
            lo, hi = r.min(axis=0), r.max(axis=0)
            if name in self.ranges:
                lo, hi = np.minimum(self.ranges[name][0], lo), np.maximum(self.ranges[name][1], hi)
            self.ranges[name] = (lo, hi)
            if take:
                self.rows.setdefault(name, []).append(r[:take])
            if self.grams_wanted:
                self.pending.setdefault(name, []).append(r)
                if sum(len(p) for p in self.pending[name]) >= GRAM_ROWS:
                    self._gram(name)
        self.kept += take

    def _gram(self, name: str) -> None:
        rows = self.pending.pop(name, [])
        if not rows:
            return
        r = np.concatenate(rows) if len(rows) > 1 else rows[0]
        g = r.T @ r  # numpy computes a product of a matrix with its own transpose as a symmetric rank-k update
        if name in self.grams:
            self.grams[name] += g
        else:
            self.grams[name] = g

    def calibration(self) -> Calibration:
        for name in list(self.pending):
            self._gram(name)
        return Calibration(self.ranges, {k: np.concatenate(v) for k, v in self.rows.items() if v}, self.grams)


def _session(raw: Path, model, suffix: str):
    """An onnxruntime session on ``model`` (a graph whose weights live in ``raw``'s external data file), with no
    graph optimisation, so that every named tensor stays alive."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # Saved beside ``raw`` so that its external weight file (if any) resolves; weights are not copied.
    probe = raw.with_name(raw.stem + suffix)
    onnx.save_model(model, str(probe))
    try:
        return ort.InferenceSession(str(probe), so, providers=["CPUExecutionProvider"])
    finally:
        probe.unlink()


def channel_stats(
    raw: Path,
    tensors: list[str],
    batches,
    *,
    keep_rows: int = 0,
    grams: bool = False,
    on_segment: Callable[[Calibration], None] | None = None,
) -> Calibration:
    """Run calibration ``batches`` of (ids, mask) through ``raw`` and record the named activation tensors.

    With ``on_segment`` the graph runs one segment at a time where it can be cut (:mod:`.layerwise`): each
    segment's statistics are handed to ``on_segment`` as soon as every batch has passed through it, and its X^T X
    are not kept (the Calibration returned has ranges and rows only). Elsewhere the whole graph runs at once and
    ``on_segment`` gets everything in one call."""
    import onnx
    from onnx import TensorProto, helper

    from .layerwise import segment_model, segments

    model = onnx.load(str(raw), load_external_data=False)
    segs = segments(model.graph, tensors) if on_segment is not None else None
    if segs is None:
        for t in tensors:
            model.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
        sess = _session(raw, model, ".calibration.onnx")
        stats = _Stats(keep_rows, grams)
        for ids, mask in batches:
            stats.add(tensors, sess.run(tensors, {"input_ids": ids, "attention_mask": mask}), mask)
        cal = stats.calibration()
        if on_segment is None:
            return cal
        on_segment(cal)
        return Calibration(cal.ranges, cal.samples, {})
    assert on_segment is not None  # segments are only looked for when there is someone to hand them to
    graph_inputs = {i.name for i in model.graph.input}
    carried: list[np.ndarray | None] = [None] * len(batches)  # each batch's hidden state at the current cut
    ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    samples: dict[str, np.ndarray] = {}
    for seg in segs:
        sess = _session(raw, segment_model(model, seg), ".segment.onnx")
        names = ([seg.cut] if seg.cut else []) + list(seg.tensors)
        stats = _Stats(keep_rows, grams)
        for b, (ids, mask) in enumerate(batches):
            given = {"input_ids": ids, "attention_mask": mask}
            feed = {n: given[n] if n in graph_inputs else carried[b] for n in seg.inputs}
            values = sess.run(names, feed)
            if seg.cut:
                carried[b], values = values[0], values[1:]
            stats.add(list(seg.tensors), values, mask)
        del sess
        part = stats.calibration()
        on_segment(part)
        ranges.update(part.ranges)
        samples.update(part.samples)
    return Calibration(ranges, samples, {}, segments=len(segs))


def sensitivity(raw: Path, cal: Calibration, plans: dict[str, Plan]) -> dict[str, float]:
    """Relative output error ``|y_q - y| / |y|`` of each constant-weight MatMul on calibration rows
    (``plans`` from :func:`plan_weights` with the same calibration)."""
    import onnx

    from .weights_io import read_initializer

    graph = onnx.load(str(raw), load_external_data=False).graph
    inits = {i.name: i for i in graph.initializer}
    out = {}
    for node in weight_matmuls(graph):
        x = cal.samples[node.input[0]]
        y = x @ read_initializer(raw, inits[node.input[1]]).astype(np.float32)
        yq = fake_quant(x, plans[node.name])
        out[node.name] = float(np.linalg.norm(yq - y) / max(np.linalg.norm(y), 1e-12))
    return out
