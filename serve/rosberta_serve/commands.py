"""``rosberta-onnx serve`` (entry-point group ``rosberta_onnx.commands``): each flag maps one to one onto a
:class:`ServeConfig` field and shows that field's default, so both are defined once, here and there."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from rosberta_onnx import VARIANTS, require

from .config import ServeConfig

__all__ = ["serve_command"]

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ServeConfig)}


def _flag(parser: argparse.ArgumentParser, name: str, help: str, **kw) -> None:
    """``--name-with-dashes`` for the ServeConfig field ``name``; unset means the field's default."""
    default = _DEFAULTS[name]
    shown = "" if default is None else f" (default {default})"
    parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=help + shown, **kw)


def _serve(a) -> int:
    require("starlette", extra="serve", purpose="rosberta-onnx serve")
    require("uvicorn", extra="serve", purpose="rosberta-onnx serve")
    from rosberta_serve import serve  # the package's name, so a caller can replace it (tests do)

    fields = {f.name for f in dataclasses.fields(ServeConfig)}
    options = {k: v for k, v in vars(a).items() if k in fields and v is not None}  # unset: ServeConfig's default
    options.setdefault("api_key", ServeConfig.api_key_from_env())
    config = ServeConfig(model_dir=Path(a.dir), batching=not a.no_batching, **options)
    try:
        serve(config)
    except KeyboardInterrupt:
        print("server stopped", file=sys.stderr)
    return 0


def serve_command(sub) -> None:
    v = sub.add_parser("serve", help="HTTP embedding server: OpenAI /v1/embeddings, TEI /embed, dynamic batching")
    v.add_argument("dir")
    _flag(v, "variant", "which variant to run", choices=("auto",) + VARIANTS)
    _flag(v, "model_name", "model id in responses (default: from the manifest)")
    _flag(v, "host", "address to listen on (loopback only by default)")
    _flag(v, "port", "0 picks a free port", type=int)
    _flag(v, "api_key", "require 'Authorization: Bearer KEY' (else env ROSBERTA_API_KEY; none: no auth)")
    _flag(v, "max_batch_tokens", "padded tokens per merged batch", type=int)
    _flag(v, "max_batch_size", "texts per merged batch", type=int)
    _flag(
        v, "max_wait_ms", "longest a request waits for others to merge with, only while more are arriving", type=float
    )
    _flag(v, "run_batch_tokens", "padded tokens per ONNX Runtime call within a batch (best on small CPUs)", type=int)
    v.add_argument("--no-batching", action="store_true", help="run every request as its own encoder call")
    _flag(v, "workers", "encoder calls run at once in this process", type=int)
    _flag(v, "threads", "ONNX Runtime threads per call (default: physical cores)", type=int)
    v.add_argument(
        "--spinning",
        action="store_true",
        default=None,
        help="keep ONNX Runtime's idle threads spinning: lower latency under steady traffic, CPU busy while idle",
    )
    _flag(
        v,
        "streams",
        "OpenVINO variants: split each run of 2+ texts across this many streams (default: 2, capped by the threads; "
        "1: off, one compiled model: ~320-380 MB less at full size)",
        type=int,
    )
    _flag(
        v,
        "long",
        "a text over the max length when its request does not say: truncate, error (413) or chunk "
        "(one vector from windows over the whole text)",
        choices=("truncate", "error", "chunk"),
    )
    _flag(v, "max_chunks", "windows per request when chunking", type=int)
    _flag(v, "max_chunk_chars", "characters per request when chunking (413 before any work)", type=int)
    _flag(v, "max_inputs", "texts per request", type=int)
    _flag(v, "max_body_bytes", "request body limit", type=int)
    _flag(v, "max_queue", "texts queued before 503", type=int)
    v.add_argument(
        "--shutdown-timeout",
        dest="shutdown_timeout_s",
        type=float,
        default=None,
        help=f"seconds in-flight requests get to finish on SIGTERM (default {_DEFAULTS['shutdown_timeout_s']})",
    )
    v.add_argument(
        "--keep-alive",
        dest="keep_alive_s",
        type=int,
        default=None,
        help=f"seconds an idle keep-alive connection stays open; keep it above your clients' pool expiry "
        f"(default {_DEFAULTS['keep_alive_s']})",
    )
    v.add_argument("--access-log", action="store_true", default=None)
    _flag(v, "log_level", "server log level", choices=["debug", "info", "warning", "error"])
    v.set_defaults(func=_serve)
