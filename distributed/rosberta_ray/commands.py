"""``rosberta-onnx embed-corpus`` (entry-point group ``rosberta_onnx.commands``): Parquet/JSONL shards in, Parquet
embedding shards out, on Ray. Ray and pyarrow are imported when the command runs."""

from __future__ import annotations

import sys

from rosberta_onnx import VARIANTS, require

__all__ = ["embed_corpus_command"]


def _embed_corpus(a) -> int:
    require("ray", extra="distributed", purpose="embed-corpus (batch embedding on Ray)")
    require("pyarrow", extra="distributed", purpose="embed-corpus (Parquet shards)")
    from .job import embed_corpus

    def progress(p) -> None:
        print(
            f"[embed-corpus] {p.shards_done}/{p.shards_todo} shards, {p.rows} rows, {p.tokens} tokens, "
            f"{p.rows / max(p.seconds, 1e-9):.1f} rows/s",
            file=sys.stderr,
            flush=True,
        )

    summary = embed_corpus(
        a.dir,
        a.input,
        a.output,
        long=a.long,
        windows=a.chunks,
        text_column=a.text_column,
        id_column=a.id_column,
        task=a.task,
        variant=a.variant,
        actors=a.actors,
        threads_per_actor=a.threads_per_actor,
        batch_size=a.batch_size,
        ray_address=a.ray_address,
        progress=progress,
    )
    print(f"[embed-corpus] {summary.format()}", file=sys.stderr)
    return 1 if summary.failed else 0


def embed_corpus_command(sub) -> None:
    c = sub.add_parser("embed-corpus", help="embed Parquet/JSONL shards into Parquet shards on Ray (restartable)")
    c.add_argument("dir", help="artifact folder (readable at the same path on every node)")
    c.add_argument("--input", required=True, help="a .parquet/.jsonl file or a folder of them")
    c.add_argument("--output", required=True, help="folder for part-*.parquet, _errors.jsonl, _summary.json")
    c.add_argument("--text-column", default="text")
    c.add_argument("--id-column", default="id")
    c.add_argument("--task", default="search_document", help="task prefix (default search_document)")
    c.add_argument("--variant", default="auto", choices=("auto",) + VARIANTS)
    c.add_argument(
        "--ray-address",
        default=None,
        help="auto: join a running cluster; local: start a local instance; default: join one if found, else local",
    )
    c.add_argument("--actors", type=int, default=None, help="actors (one model each); default: cluster CPUs / threads")
    c.add_argument("--threads-per-actor", type=int, default=1)
    c.add_argument("--batch-size", type=int, default=32)
    c.add_argument(
        "--long",
        choices=("truncate", "chunk"),
        default="truncate",
        help="a row over the max length: truncate it (default), or chunk it into windows and write their "
        "token-weighted mean",
    )
    c.add_argument(
        "--chunks",
        action="store_true",
        help="one output row per window instead: id, chunk, start, end (characters), tokens, embedding",
    )
    c.set_defaults(func=_embed_corpus)
