"""Input and output shards: discovery, chunked reading, atomic Parquet writes, and the restart check.

The unit of work is one input shard. Its output is ``part-<stem>.parquet`` plus a small record
``_state/part-<stem>.json`` (row counts, bad rows, the settings used). The record is written first
and the Parquet file is moved into place last, each by ``os.replace``, so a shard's Parquet file
exists only once everything about it is on disk: a killed job loses only the shards in flight.
Names starting with ``_`` or ``.`` are skipped by Parquet dataset readers (pyarrow, Ray, Spark,
DuckDB), so the output folder reads as one dataset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosberta_onnx import RosbertaError, atomic_path, write_json_atomic

__all__ = [
    "InputShard",
    "RawChunk",
    "ShardError",
    "OutputMismatchError",
    "discover",
    "read_chunks",
    "output_path",
    "record_path",
    "is_complete",
    "read_record",
    "AtomicParquetWriter",
]

FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
STATE_DIR = "_state"


class ShardError(RosbertaError, ValueError):
    """An input shard that can't be read as a whole (missing column, not Parquet, ...)."""


class OutputMismatchError(RosbertaError, ValueError):
    """The output folder already holds shards made with other settings (model, task, columns)."""


@dataclass(frozen=True)
class InputShard:
    path: Path
    name: str  # path relative to the input root, posix style: what errors and records call it
    format: str  # "parquet" | "jsonl"
    size: int

    @property
    def stem(self) -> str:
        # Shards in sub-folders (e.g. hive partitions) get the folder in the name, so names can't collide.
        return self.name.rsplit(".", 1)[0].replace("/", "__")


@dataclass
class RawChunk:
    start: int  # index within the shard of the chunk's first row
    ids: list
    texts: list
    problems: dict[int, str] = field(default_factory=dict)  # chunk index -> why the row couldn't be parsed


def discover(source: str | os.PathLike, *, exclude: str | os.PathLike | None = None) -> list[InputShard]:
    """The shards of ``source``: one ``.parquet``/``.jsonl`` file, or every such file under a folder
    (recursively, skipping names that start with ``.`` or ``_``, and skipping ``exclude``)."""
    root = Path(source)
    if root.is_file():
        paths, base = [root], root.parent
    elif root.is_dir():
        skip = Path(exclude).resolve() if exclude is not None else None
        base = root
        paths = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and p.suffix in FORMATS
            and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
            and not (skip is not None and p.resolve().is_relative_to(skip))
        )
    else:
        raise FileNotFoundError(f"input {str(root)!r} does not exist; pass a .parquet/.jsonl file or a folder of them")
    shards = []
    for p in paths:
        if p.suffix not in FORMATS:
            raise ShardError(f"{p}: unknown input format {p.suffix!r}; use one of {sorted(FORMATS)}")
        shards.append(InputShard(p.resolve(), p.relative_to(base).as_posix(), FORMATS[p.suffix], p.stat().st_size))
    if not shards:
        raise FileNotFoundError(f"no {'/'.join(sorted(FORMATS))} files under {str(root)!r}")
    seen: dict[str, str] = {}
    for s in shards:
        if s.stem in seen:
            raise ShardError(
                f"input shards {seen[s.stem]!r} and {s.name!r} would both write part-{s.stem}.parquet; "
                "rename one of them"
            )
        seen[s.stem] = s.name
    return shards


def output_path(output: Path, shard: InputShard) -> Path:
    return output / f"part-{shard.stem}.parquet"


def record_path(output: Path, shard: InputShard) -> Path:
    return output / STATE_DIR / f"part-{shard.stem}.json"


# -- reading ------------------------------------------------------------------------------------
def read_chunks(shard: InputShard, *, text_column: str, id_column: str, chunk_rows: int) -> Iterator[RawChunk]:
    """The shard's rows, ``chunk_rows`` at a time, in file order."""
    if shard.format == "parquet":
        return _parquet_chunks(shard, text_column, id_column, chunk_rows)
    return _jsonl_chunks(shard, text_column, id_column, chunk_rows)


def _parquet_chunks(shard: InputShard, text_column: str, id_column: str, chunk_rows: int) -> Iterator[RawChunk]:
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(shard.path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError with varying text
        raise ShardError(f"{shard.name}: not a readable Parquet file ({exc})") from exc
    names = f.schema_arrow.names
    for col in (id_column, text_column):
        if col not in names:
            raise ShardError(
                f"{shard.name}: no column {col!r}; its columns are {names}. "
                "Name yours with --text-column / --id-column."
            )
    start = 0
    for batch in f.iter_batches(batch_size=chunk_rows, columns=[id_column, text_column]):
        yield RawChunk(start, batch.column(0).to_pylist(), batch.column(1).to_pylist())
        start += batch.num_rows


def _jsonl_chunks(shard: InputShard, text_column: str, id_column: str, chunk_rows: int) -> Iterator[RawChunk]:
    chunk = RawChunk(0, [], [])
    row = 0
    with open(shard.path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            if not raw.strip():
                continue  # blank lines are not rows
            ident, text, problem = None, None, None
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                problem = f"line {line_no}: invalid UTF-8"
            except json.JSONDecodeError as exc:
                problem = f"line {line_no}: not valid JSON ({exc.msg})"
            else:
                if not isinstance(obj, dict):
                    problem = f"line {line_no}: a JSON {type(obj).__name__}, not an object"
                else:
                    ident, text = obj.get(id_column), obj.get(text_column)
                    missing = [c for c in (id_column, text_column) if c not in obj]
                    if missing:
                        problem = f"line {line_no}: no {' or '.join(repr(c) for c in missing)} field"
            if problem is not None:
                chunk.problems[len(chunk.texts)] = problem
            chunk.ids.append(ident)
            chunk.texts.append(text)
            row += 1
            if len(chunk.texts) >= chunk_rows:
                yield chunk
                chunk = RawChunk(row, [], [])
    if chunk.texts:
        yield chunk


# -- writing ------------------------------------------------------------------------------------
class AtomicParquetWriter:
    """Stream tables into a temp file next to ``path`` (:func:`rosberta_onnx.atomic_path`), moved into place on a
    clean exit.

    The file's schema is the first table's, plus ``metadata`` (so each shard says how it was made).
    On an exception the temp file is removed and ``path`` is left as it was.
    """

    def __init__(self, path: Path, *, metadata: dict[str, str]) -> None:
        self.path = path
        self.metadata = metadata
        self.schema = None
        self.rows = 0
        self._writer: Any = None  # a pyarrow ParquetWriter, made by the first write()
        self._place = atomic_path(path)

    def __enter__(self) -> AtomicParquetWriter:
        self.tmp = self._place.__enter__()
        return self

    def write(self, table) -> None:
        if self._writer is None:
            import pyarrow.parquet as pq

            self.schema = table.schema.with_metadata({**(table.schema.metadata or {}), **self.metadata})
            self._writer = pq.ParquetWriter(self.tmp, self.schema)
        writer = self._writer
        writer.write_table(table.cast(self.schema))
        self.rows += table.num_rows

    def write_empty(self, schema) -> None:
        """Give a shard without a single good row a valid, empty file."""
        self.write(schema.empty_table())

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._writer is not None:
            self._writer.close()
        if exc_type is None and self._writer is None:
            exc = RosbertaError(f"nothing was written to {self.path}; call write_empty() for an empty shard")
            self._place.__exit__(type(exc), exc, None)
            raise exc
        self._place.__exit__(exc_type, exc, tb)


# -- the restart check --------------------------------------------------------------------------
def read_record(output: Path, shard: InputShard) -> dict[str, Any] | None:
    try:
        return json.loads(record_path(output, shard).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_record(output: Path, shard: InputShard, record: dict[str, Any]) -> None:
    record_path(output, shard).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(record_path(output, shard), record)


def is_complete(output: Path, shard: InputShard, settings: dict[str, Any]) -> bool:
    """Whether ``shard``'s output is fully written for this input and these ``settings``.

    Raises :class:`OutputMismatchError` when it was written with other settings: mixing vectors of two
    models or tasks in one output would be silently wrong.
    """
    import pyarrow.parquet as pq

    out = output_path(output, shard)
    if not out.is_file():
        return False
    rec = read_record(output, shard)
    if rec is None:
        return False
    if rec.get("settings") != settings:
        diff = {
            k: (rec.get("settings", {}).get(k), v) for k, v in settings.items() if rec.get("settings", {}).get(k) != v
        }
        raise OutputMismatchError(
            f"{out} was written with other settings ({', '.join(f'{k}: {a!r} then, {b!r} now' for k, (a, b) in diff.items())}). "
            "Use another --output folder, or delete this one to start over."
        )
    if rec.get("input", {}).get("size") != shard.size:
        return False  # the input shard changed since: redo it
    try:
        rows = pq.ParquetFile(out).metadata.num_rows
    except Exception:  # a damaged file: redo it
        return False
    return rows == rec.get("embedded") and rec.get("rows") == rec.get("embedded", -1) + len(rec.get("errors", ()))
