"""``RayEmbedder``: one ``Encoder`` per Ray actor, as a callable class for ``Dataset.map_batches``.

    ds = ray.data.read_parquet("s3://bucket/corpus/")
    out = ds.map_batches(RayEmbedder, fn_constructor_args=("models/rosberta-onnx",),
                         fn_constructor_kwargs={"task": "search_document", "threads": 2},
                         concurrency=4, num_cpus=2, batch_size=256, batch_format="pyarrow")

Bad rows (a null or non-string text, a null id) don't fail the batch: they come back with a NaN
vector and the reason in the ``error`` column, so nothing is silently dropped. Filter them with
``out.filter(expr="error IS NULL")`` or ``out.filter(lambda r: r["error"] is None)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rosberta_onnx import ChunkPlan, Encoder, RosbertaError, TaskError

__all__ = ["RayEmbedder", "EmbeddedRows", "EmbeddedWindows", "ColumnError", "find_bad_rows"]

ERROR_COLUMN = "error"


class ColumnError(RosbertaError, ValueError):
    """A batch without the text or id column the embedder was told to read."""


def find_bad_rows(ids: Sequence[Any] | None, texts: Sequence[Any]) -> dict[int, str]:
    """``{row index: reason}`` for rows that can't be embedded: a text that is null or not a ``str``,
    or (when ``ids`` is given) a null id, which would leave the vector unattributable."""
    bad: dict[int, str] = {}
    for i, t in enumerate(texts):
        if ids is not None and _is_null(ids[i]):
            bad[i] = "id is null"
        elif _is_null(t):
            bad[i] = "text is null"
        elif not isinstance(t, str):
            bad[i] = f"text is {type(t).__name__}, not str"
    return bad


def _is_null(value: Any) -> bool:
    # pandas turns a missing value in an object column into float NaN; treat it like None.
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class EmbeddedWindows:
    """The result of :meth:`RayEmbedder.embed_windows`: per good row its windows (ids and spans), their vectors in
    order, and the bad rows."""

    good: np.ndarray  # int64 (k,)
    plans: list[ChunkPlan]  # one per good row
    embeddings: np.ndarray  # float32 (windows, dim), the plans' rows in order
    bad: dict[int, str]


@dataclass(frozen=True)
class EmbeddedRows:
    """The result of :meth:`RayEmbedder.embed`: good rows (by index) with their vectors, and bad rows."""

    good: np.ndarray  # int64 (k,): indices into the input of the rows that were embedded
    embeddings: np.ndarray  # float32 (k, dim)
    token_counts: np.ndarray  # int64 (k,)
    truncated: np.ndarray  # bool (k,)
    bad: dict[int, str]  # input index -> reason


class RayEmbedder:
    """Embed a text column batch by batch; built once per actor, so the model loads once per actor.

    ``model_dir``: an artifact folder readable on every node (shared filesystem or baked into the
    image). ``threads``: ONNX Runtime intra-op threads; give the actor as many CPUs
    (``num_cpus=threads`` in ``map_batches``) so Ray doesn't put more actors on a node than it has cores.
    ``id_column=None`` returns no id column (the rows keep their order within a batch).

    A batch is a ``pyarrow.Table``, a ``pandas.DataFrame`` or a dict of numpy arrays (Ray's
    ``batch_format``). Returns the id column, ``embedding`` (float32, ``dim`` wide), ``token_count``,
    ``truncated`` and ``error`` (null for good rows): a ``pyarrow.Table`` with a fixed-size-list
    ``embedding`` column for pyarrow batches, otherwise a dict of numpy arrays (2-D ``embedding``).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        *,
        variant: str = "auto",
        task: str | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        text_column: str = "text",
        id_column: str | None = "id",
        long: str = "truncate",
    ) -> None:
        if long not in ("truncate", "chunk"):
            raise ValueError(
                f"long={long!r}: a corpus row over the max length is either truncated or chunked "
                "(one vector from windows over the whole text); choose 'truncate' or 'chunk'"
            )
        self.encoder = Encoder.load(model_dir, variant=variant, threads=threads)
        self.long = long
        if task is not None and task not in self.encoder.tasks:
            raise TaskError(f"unknown task {task!r}; valid tasks: {', '.join(self.encoder.tasks)} (or none)")
        self.task = task
        self.batch_size = batch_size
        self.text_column = text_column
        self.id_column = id_column

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def embed(self, ids: Sequence[Any] | None, texts: Sequence[Any]) -> EmbeddedRows:
        """Embed the good rows of ``texts``; the bad ones are listed with a reason, never raised."""
        bad = find_bad_rows(ids, texts)
        good = np.array([i for i in range(len(texts)) if i not in bad], dtype=np.int64)
        res = self.encoder.encode_detailed(
            [texts[i] for i in good], task=self.task, long=self.long, batch_size=self.batch_size
        )
        return EmbeddedRows(
            good=good, embeddings=res.embeddings, token_counts=res.token_counts, truncated=res.truncated, bad=bad
        )

    def embed_windows(self, ids: Sequence[Any] | None, texts: Sequence[Any]) -> EmbeddedWindows:
        """Every window of the good rows of ``texts`` with its vector (one output row per window)."""
        bad = find_bad_rows(ids, texts)
        good = np.array([i for i in range(len(texts)) if i not in bad], dtype=np.int64)
        plans = self.encoder.plan([texts[i] for i in good], task=self.task)
        rows = [r for p in plans for r in p.rows]
        vecs = self.encoder.encode_ids(rows, batch_size=self.batch_size)
        return EmbeddedWindows(good=good, plans=plans, embeddings=vecs, bad=bad)

    def __call__(self, batch):
        texts = _column(batch, self.text_column)
        id_col = self.id_column
        ids = _column(batch, id_col) if id_col is not None else None
        rows = self.embed(ids, texts)
        n = len(texts)
        vecs = np.full((n, self.dim), np.nan, dtype=np.float32)  # NaN: a bad row can't pass for a vector
        counts = np.zeros(n, dtype=np.int64)
        truncated = np.zeros(n, dtype=bool)
        errors = np.full(n, None, dtype=object)
        vecs[rows.good], counts[rows.good], truncated[rows.good] = rows.embeddings, rows.token_counts, rows.truncated
        for i, reason in rows.bad.items():
            errors[i] = reason
        if _is_arrow(batch):
            import pyarrow as pa

            cols = {} if id_col is None else {id_col: batch.column(id_col)}
            cols.update(
                embedding=fixed_size_vectors(vecs),
                token_count=pa.array(counts),
                truncated=pa.array(truncated),
                **{ERROR_COLUMN: pa.array(list(errors), type=pa.string())},
            )
            return pa.table(cols)
        out: dict[str, np.ndarray] = {} if id_col is None else {id_col: np.asarray(_raw_column(batch, id_col))}
        out.update(embedding=vecs, token_count=counts, truncated=truncated, **{ERROR_COLUMN: errors})
        return out


def fixed_size_vectors(vecs: np.ndarray):
    """A float32 ``(n, dim)`` array as a pyarrow ``fixed_size_list<float32>[dim]`` array (no copy)."""
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(vecs, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, vecs.shape[1])


def _is_arrow(batch) -> bool:
    return type(batch).__module__.startswith("pyarrow")


def _raw_column(batch, name: str):
    try:
        return batch.column(name) if _is_arrow(batch) else batch[name]
    except KeyError:
        have = list(batch.column_names if _is_arrow(batch) else batch.keys())
        raise ColumnError(
            f"the batch has no column {name!r}; its columns are {have}. "
            f"Pass text_column=/id_column= naming yours (id_column=None for none)."
        ) from None


def _column(batch, name: str) -> list:
    col = _raw_column(batch, name)
    return col.to_pylist() if _is_arrow(batch) else list(col)
