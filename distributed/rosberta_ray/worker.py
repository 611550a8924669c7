"""``ShardEmbedder``: the actor behind ``embed-corpus``; one call embeds whole input shards.

Each actor holds one :class:`~rosberta_ray.embedder.RayEmbedder` (so one ``Encoder``, loaded once),
reads its shard itself in chunks, and streams the vectors into the shard's output file. The
vectors go from the worker straight to storage: the driver only ever sees one small stats row per
shard, so it is not a bottleneck however many nodes there are.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .embedder import RayEmbedder, fixed_size_vectors
from .shards import AtomicParquetWriter, InputShard, output_path, read_chunks, record_path, write_record

__all__ = ["ShardEmbedder", "RESULT_FIELDS"]

# One row per shard comes back to the driver with these fields.
RESULT_FIELDS = (
    "shard",
    "rows",
    "embedded",
    "errors",
    "tokens",
    "seconds",
    "load_seconds",
    "variant",
    "worker",
    "failure",
)


class ShardEmbedder:
    """Callable class for ``Dataset.map_batches`` over a dataset of shard descriptions (``"shard"`` column,
    JSON of an :class:`InputShard`). Writes ``part-<stem>.parquet`` + its record under ``output``."""

    def __init__(
        self,
        model_dir: str,
        *,
        output: str,
        settings: dict[str, Any],
        variant: str = "auto",
        task: str | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        text_column: str = "text",
        id_column: str = "id",
        chunk_rows: int = 1024,
        long: str = "truncate",
        windows: bool = False,
        board=None,
    ) -> None:
        t0 = time.perf_counter()
        self.embedder = RayEmbedder(
            model_dir,
            variant=variant,
            task=task,
            threads=threads,
            batch_size=batch_size,
            text_column=text_column,
            id_column=id_column,
            long=long,
        )
        self.windows = windows  # one output row per window of each text, instead of one per text
        self.load_seconds = time.perf_counter() - t0
        self.id_column = id_column  # every shard row needs an id: its vector is attributed by it
        self.output = _path(output)
        self.settings = settings
        self.chunk_rows = chunk_rows
        self.board = board
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [self.run_shard(_shard_from_json(s)) for s in batch["shard"]]
        return {k: np.array([r[k] for r in results]) for k in RESULT_FIELDS}

    def run_shard(self, shard: InputShard) -> dict[str, Any]:
        """Embed one shard and commit its output; a shard that can't be done is reported, not raised."""
        t0 = time.perf_counter()
        stats = dict(
            shard=shard.name,
            rows=0,
            embedded=0,
            errors=0,
            tokens=0,
            seconds=0.0,
            load_seconds=self.load_seconds,
            variant=self.embedder.encoder.variant,
            worker=self.worker,
            failure="",
        )
        self.load_seconds = 0.0  # count the model load once, with the actor's first shard
        try:
            self._embed_shard(shard, stats)
        except Exception as exc:
            # Nothing of it was committed, so none of its rows count as done.
            stats.update(rows=0, embedded=0, errors=0, tokens=0, failure=f"{type(exc).__name__}: {exc}")
        stats["seconds"] = time.perf_counter() - t0
        return stats

    def _embed_shard(self, shard: InputShard, stats: dict[str, Any]) -> None:
        import pyarrow.parquet as pq

        id_col, emb = self.id_column, self.embedder
        out = output_path(self.output, shard)
        # Whatever is there is stale or incomplete (the driver checked): remove it before anything else,
        # so a crash in between can't leave an old Parquet file next to a new record.
        out.unlink(missing_ok=True)
        record_path(self.output, shard).unlink(missing_ok=True)
        id_type = pq.read_schema(shard.path).field(id_col).type if shard.format == "parquet" else None
        bad_rows: list[dict[str, Any]] = []
        n_truncated = 0
        meta = {
            "rosberta.settings": json.dumps(self.settings),
            "rosberta.input": shard.name,
            "rosberta.variant": emb.encoder.variant,
        }
        build = self._window_part if self.windows else self._document_part
        with AtomicParquetWriter(out, metadata=meta) as writer:
            for chunk in read_chunks(shard, text_column=emb.text_column, id_column=id_col, chunk_rows=self.chunk_rows):
                part = build(chunk, id_type)
                reasons = {**part.bad, **chunk.problems}  # a parse problem says more than "text is null"
                bad_rows += [
                    {"id": _jsonable(chunk.ids[i]), "shard": shard.name, "row": chunk.start + i, "reason": r}
                    for i, r in sorted(reasons.items())
                ]
                if part.table is not None:
                    id_type = part.table.schema.field(id_col).type  # JSONL ids take the type of the first good ones
                    writer.write(part.table)
                stats["rows"] += len(chunk.texts)
                stats["embedded"] += part.embedded
                stats["tokens"] += part.tokens
                n_truncated += part.truncated
                if self.board is not None:
                    self.board.add.remote(len(chunk.texts), part.tokens)  # fire and forget
            if writer.rows == 0:
                writer.write_empty(self._schema(id_type))
            stats["errors"] = len(bad_rows)
            # The record goes first; moving the Parquet file into place (on leaving this block) commits the shard.
            write_record(
                self.output,
                shard,
                {
                    "input": {"name": shard.name, "format": shard.format, "size": shard.size},
                    "output": out.name,
                    "settings": self.settings,
                    "variant": emb.encoder.variant,
                    "rows": stats["rows"],
                    "embedded": stats["embedded"],
                    "tokens": stats["tokens"],
                    "truncated": n_truncated,
                    "errors": bad_rows,
                    "worker": self.worker,
                },
            )

    def _schema(self, id_type):
        """The output's columns: per text (id, embedding, token_count, truncated), or per window (id, chunk, start,
        end, tokens, embedding)."""
        import pyarrow as pa

        vec = ("embedding", pa.list_(pa.float32(), self.embedder.dim))
        if self.windows:
            cols = [("chunk", pa.int32()), ("start", pa.int64()), ("end", pa.int64()), ("tokens", pa.int64()), vec]
        else:
            cols = [vec, ("token_count", pa.int64()), ("truncated", pa.bool_())]
        return pa.schema([(self.id_column, id_type or pa.string()), *cols])

    def _document_part(self, chunk, id_type) -> _Part:
        import pyarrow as pa

        res = self.embedder.embed(chunk.ids, chunk.texts)
        table = None
        if len(res.good):
            # JSONL ids take the type of the first good ones; a later id of another type fails the shard.
            table = pa.table(
                {
                    self.id_column: pa.array([chunk.ids[i] for i in res.good], type=id_type),
                    "embedding": fixed_size_vectors(res.embeddings),
                    "token_count": pa.array(res.token_counts, pa.int64()),
                    "truncated": pa.array(res.truncated, pa.bool_()),
                }
            )
        return _Part(table, res.bad, int(res.token_counts.sum()), int(res.truncated.sum()), len(res.good))

    def _window_part(self, chunk, id_type) -> _Part:
        import pyarrow as pa

        res = self.embedder.embed_windows(chunk.ids, chunk.texts)
        table = None
        if len(res.good):
            ids, numbers, starts, ends, tokens = [], [], [], [], []
            for i, plan in zip(res.good, res.plans):
                for j, (row, (a, b)) in enumerate(zip(plan.rows, plan.char_spans)):
                    ids.append(chunk.ids[i])
                    numbers.append(j)
                    starts.append(a)
                    ends.append(b)
                    tokens.append(len(row))
            table = pa.table(
                {
                    self.id_column: pa.array(ids, type=id_type),
                    "chunk": pa.array(numbers, pa.int32()),
                    "start": pa.array(starts, pa.int64()),
                    "end": pa.array(ends, pa.int64()),
                    "tokens": pa.array(tokens, pa.int64()),
                    "embedding": fixed_size_vectors(res.embeddings),
                }
            )
        return _Part(table, res.bad, sum(sum(map(len, p.rows)) for p in res.plans), 0, len(res.good))


@dataclass(frozen=True)
class _Part:
    """What one read chunk of a shard became: its output table (None: no good row), bad rows, counts."""

    table: Any
    bad: dict[int, str]
    tokens: int
    truncated: int
    embedded: int


def shard_to_json(shard: InputShard) -> str:
    return json.dumps({"path": str(shard.path), "name": shard.name, "format": shard.format, "size": shard.size})


def _shard_from_json(text) -> InputShard:
    d = json.loads(str(text))
    return InputShard(_path(d["path"]), d["name"], d["format"], d["size"])


def _path(p):
    from pathlib import Path

    return Path(p)


def _jsonable(value: Any) -> Any:
    # Ids land in a JSON errors file: keep JSON's own types, spell anything else (bytes, dates) as text.
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
