"""``embed_corpus``: a folder of shards in, a folder of Parquet embedding shards out, on Ray Data.

The driver lists the input shards, skips those whose output is already complete, and runs Ray Data
over the rest: a dataset with one row per pending shard, mapped by an actor pool of
:class:`~rosberta_ray.worker.ShardEmbedder` (one ``Encoder`` per actor). Workers write the outputs;
the driver collects one stats row per shard, prints progress from a tiny counter actor, and at the
end rebuilds ``_errors.jsonl`` (every bad row of every shard) and ``_summary.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rosberta_onnx import Manifest, RosbertaError, TaskError, VariantError, atomic_file, require, write_json_atomic

from .shards import InputShard, discover, is_complete, output_path, read_record
from .worker import RESULT_FIELDS, ShardEmbedder, shard_to_json

__all__ = ["embed_corpus", "JobSummary", "ShardResult", "Progress", "RayClusterError", "ERRORS_FILE", "SUMMARY_FILE"]

ERRORS_FILE = "_errors.jsonl"
SUMMARY_FILE = "_summary.json"


class RayClusterError(RosbertaError, ConnectionError):
    """No Ray cluster at the address given."""


@dataclass(frozen=True)
class ShardResult:
    """What one worker reports for one shard (``failure`` is empty when it succeeded)."""

    shard: str
    rows: int
    embedded: int
    errors: int
    tokens: int
    seconds: float
    load_seconds: float
    variant: str
    worker: str
    failure: str


@dataclass(frozen=True)
class Progress:
    shards_done: int
    shards_todo: int
    rows: int
    tokens: int
    seconds: float


@dataclass
class JobSummary:
    """The outcome of one :func:`embed_corpus` run; ``results`` covers the shards this run processed."""

    output: str
    shards_total: int
    shards_skipped: int
    seconds: float
    results: list[ShardResult] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.results)

    @property
    def embedded(self) -> int:
        return sum(r.embedded for r in self.results)

    @property
    def error_rows(self) -> int:
        return sum(r.errors for r in self.results)

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.results)

    @property
    def failed(self) -> list[ShardResult]:
        return [r for r in self.results if r.failure]

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "shards_total": self.shards_total,
            "shards_skipped": self.shards_skipped,
            "shards_done": len(self.results) - len(self.failed),
            "shards_failed": len(self.failed),
            "rows": self.rows,
            "embedded": self.embedded,
            "error_rows": self.error_rows,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 2),
            "variants": sorted({r.variant for r in self.results if not r.failure}),
            "results": [asdict(r) for r in self.results],
        }

    def format(self) -> str:
        """A few lines for people: what was done, how fast, what went wrong."""
        if not self.results:
            return f"nothing to do: all {self.shards_total} shard(s) in {self.output} are already complete"
        lines = [
            f"{len(self.results) - len(self.failed)} shard(s) embedded, {self.shards_skipped} already complete, "
            f"{len(self.failed)} failed (of {self.shards_total})",
            f"{self.rows} rows ({self.embedded} embedded, {self.error_rows} bad -> {ERRORS_FILE}), "
            f"{self.tokens} tokens in {self.seconds:.1f} s: {self.rows_per_s:.1f} rows/s",
        ]
        lines += [f"FAILED {r.shard}: {r.failure}" for r in self.failed]
        if self.failed:
            lines.append("re-run the same command to retry the failed shards; complete ones are skipped")
        return "\n".join(lines)


def embed_corpus(
    model_dir: str | os.PathLike,
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    text_column: str = "text",
    id_column: str = "id",
    task: str | None = "search_document",
    variant: str = "auto",
    long: str = "truncate",
    windows: bool = False,
    actors: int | None = None,
    threads_per_actor: int = 1,
    batch_size: int = 32,
    chunk_rows: int = 1024,
    ray_address: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    progress_every: float = 5.0,
) -> JobSummary:
    """Embed every row of ``source`` (a .parquet/.jsonl file or a folder of them) into ``output``.

    Writes ``part-<shard>.parquet`` per input shard (columns: the id column, ``embedding``
    fixed-size list of float32, ``token_count``, ``truncated``), ``_errors.jsonl`` (bad rows: id,
    shard, row, reason) and ``_summary.json``. ``long``: a row over the model's max length is
    truncated, or (``"chunk"``) embedded as the weighted mean of windows over its whole text.
    ``windows``: one output row per window instead (columns: id, ``chunk``, ``start``/``end``
    characters, ``tokens``, ``embedding``). Re-running with the same ``output`` skips shards
    already complete. Paths must be readable (and ``output`` writable) at the same place on every node.

    Uses the running Ray instance if there is one; otherwise ``ray.init(address=ray_address)``
    (``None``: join a running cluster if one is found, else start a local one; ``"auto"``: join or
    fail; ``"local"``: always a fresh local instance) and shuts it down at the end. ``actors``
    defaults to the cluster's CPUs divided by ``threads_per_actor``.
    """
    t0 = time.perf_counter()
    model_dir, out = Path(model_dir).resolve(), Path(output).resolve()
    if long not in ("truncate", "chunk"):
        raise ValueError(f"long={long!r}: choose 'truncate' or 'chunk' (one vector from windows over the whole text)")
    settings = _settings(model_dir, variant=variant, task=task, text_column=text_column, id_column=id_column)
    settings.update(long=long, windows=windows)  # what the output's rows are, so a restart with others is refused
    shards = discover(source, exclude=out)
    out.mkdir(parents=True, exist_ok=True)
    pending = [s for s in shards if not is_complete(out, s, settings)]  # raises if the output holds other settings
    summary = JobSummary(str(out), len(shards), len(shards) - len(pending), 0.0)
    if pending:
        summary.results = _run_ray(
            pending,
            model_dir,
            out,
            settings,
            variant=variant,
            task=task,
            actors=actors,
            threads=threads_per_actor,
            batch_size=batch_size,
            chunk_rows=chunk_rows,
            text_column=text_column,
            id_column=id_column,
            ray_address=ray_address,
            progress=progress,
            progress_every=progress_every,
            t0=t0,
        )
    summary.seconds = time.perf_counter() - t0
    _write_errors_file(out, shards)
    write_json_atomic(out / SUMMARY_FILE, summary.to_dict())
    return summary


def _settings(model_dir: Path, *, variant: str, task: str | None, text_column: str, id_column: str) -> dict[str, Any]:
    """What the vectors depend on, checked here (before any actor starts) and recorded with each shard."""
    m = Manifest.read(model_dir)
    if task is not None and task not in m.model.prompts:
        raise TaskError(f"unknown task {task!r}; valid tasks: {', '.join(m.model.prompts)} (or none)")
    if variant != "auto" and variant not in m.variants:
        raise VariantError(f"variant {variant!r} is not in {model_dir}; it has {sorted(m.variants)} (or use auto)")
    files = {"tokenizer": m.tokenizer_sha256, **{n: dict(r.files) for n, r in sorted(m.variants.items())}}
    fingerprint = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    return {"model": fingerprint, "variant": variant, "task": task, "text_column": text_column, "id_column": id_column}


class _Board:
    """Rows and tokens done so far, bumped by every worker after each chunk (a Ray actor at run time)."""

    def __init__(self) -> None:
        self.rows = self.tokens = 0

    def add(self, rows: int, tokens: int) -> None:
        self.rows += rows
        self.tokens += tokens

    def snapshot(self) -> tuple[int, int]:
        return self.rows, self.tokens


def _run_ray(
    pending: list[InputShard],
    model_dir: Path,
    out: Path,
    settings: dict[str, Any],
    *,
    variant,
    task,
    actors,
    threads,
    batch_size,
    chunk_rows,
    text_column,
    id_column,
    ray_address,
    progress,
    progress_every,
    t0,
) -> list[ShardResult]:
    ray = require("ray", extra="distributed", purpose="embed-corpus (batch embedding on Ray)")
    require("ray.data", extra="distributed", purpose="embed-corpus (batch embedding on Ray)")
    owned = not ray.is_initialized()
    if owned:
        os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
        try:
            ray.init(address=ray_address, include_dashboard=False)
        except ConnectionError as exc:
            raise RayClusterError(
                f"no Ray cluster reachable at address {ray_address!r} ({exc}). Start one with "
                "`ray start --head` (and `ray start --address=HEAD:6379` on the other nodes), "
                "or pass --ray-address local to run on this machine only."
            ) from exc
    results: list[ShardResult] = []
    stop = threading.Event()
    poller = board = None
    try:
        if actors is None:
            actors = max(1, int(ray.cluster_resources().get("CPU", 1) // max(threads, 1)))
        board = ray.remote(num_cpus=0)(_Board).remote()
        ds = ray.data.from_items([{"shard": shard_to_json(s)} for s in pending], override_num_blocks=len(pending))
        # One shard per call and per actor queue: a free actor picks the next shard instead of one actor
        # holding a backlog while another idles.
        ds = ds.map_batches(
            ShardEmbedder,
            batch_size=1,
            num_cpus=threads,
            compute=ray.data.ActorPoolStrategy(size=min(actors, len(pending)), max_tasks_in_flight_per_actor=1),
            fn_constructor_kwargs=dict(
                model_dir=str(model_dir),
                output=str(out),
                settings=settings,
                variant=variant,
                task=task,
                threads=threads,
                batch_size=batch_size,
                text_column=text_column,
                id_column=id_column,
                chunk_rows=chunk_rows,
                long=settings["long"],
                windows=settings["windows"],
                board=board,
            ),
        )

        def report() -> None:
            rows, tokens = ray.get(board.snapshot.remote(), timeout=30)
            progress(Progress(len(results), len(pending), rows, tokens, time.perf_counter() - t0))

        if progress is not None:

            def poll() -> None:
                while not stop.wait(progress_every):
                    try:
                        report()
                    except Exception:
                        pass

            poller = threading.Thread(target=poll, name="embed-corpus-progress", daemon=True)
            poller.start()
        for row in ds.iter_rows():
            results.append(ShardResult(**{k: _plain(row[k]) for k in RESULT_FIELDS}))
        stop.set()
        if progress is not None:  # the last line from the results themselves: the counter may lag behind
            progress(
                Progress(
                    len(results),
                    len(pending),
                    sum(r.rows for r in results),
                    sum(r.tokens for r in results),
                    time.perf_counter() - t0,
                )
            )
    finally:
        stop.set()
        if poller is not None:
            poller.join(timeout=5)
        if board is not None and not owned:
            ray.kill(board)  # the caller's Ray instance lives on; don't leave our counter in it
        if owned:
            ray.shutdown()
    return sorted(results, key=lambda r: r.shard)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _write_errors_file(out: Path, shards: list[InputShard]) -> None:
    """``_errors.jsonl`` from every complete shard's record, rebuilt each run so restarts can't duplicate lines."""
    with atomic_file(out / ERRORS_FILE, "w") as f:
        for s in shards:
            rec = read_record(out, s) if output_path(out, s).is_file() else None
            for e in (rec or {}).get("errors", ()):
                f.write(json.dumps(e, ensure_ascii=False) + "\n")
