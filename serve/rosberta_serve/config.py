"""Every server setting in one frozen dataclass, checked once when it is built."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServeConfig", "API_KEY_ENV", "SERVE_STREAMS"]

API_KEY_ENV = "ROSBERTA_API_KEY"
SERVE_STREAMS = 2  # OpenVINO batch streams the server asks for unless told (the engine caps it at the threads)


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """What ``rosberta-onnx serve`` runs with; the CLI flags map one to one onto these fields.

    ``max_batch_tokens``/``max_batch_size``/``max_wait_ms`` shape the dynamic batches and
    ``run_batch_tokens`` the ONNX Runtime calls each one is split into (see
    :mod:`rosberta_serve.batcher`); ``batching=False`` runs each request as its own encoder call.
    ``workers`` is the number of encoder calls that may run at once inside this one process (each
    uses ``threads`` ONNX Runtime threads); it is not a count of server processes, because the point of
    one process is one shared queue to batch from. ``api_key`` None means no authentication.
    """

    model_dir: Path
    variant: str = "auto"
    model_name: str | None = None  # what /v1/models and responses call the model; default from the manifest
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str | None = None
    max_batch_tokens: int = 8192
    run_batch_tokens: int = 256  # padded tokens per ONNX Runtime call inside a merged batch
    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    batching: bool = True
    workers: int = 1
    threads: int | None = None
    # ONNX Runtime's idle threads spin between calls: lower latency for steady traffic, CPU burnt while idle
    # (benchmarks/results/spinning: one short query 43.9 -> 36.3 ms median at 20 ms gaps, 1.32 -> 1.59 cores busy)
    spinning: bool = False
    # OpenVINO variants: a run of 2+ texts split across this many streams (None: SERVE_STREAMS, capped by the
    # threads). Concurrent clients make batches, which streams speed up; Encoder.load alone defaults to the lean 1.
    streams: int | None = None
    # a text over the max length, when its request does not say (TEI's "truncate"): truncate, error (413) or chunk
    # (one vector from overlapping windows over the whole text, as Encoder.encode(long="chunk"))
    long: str = "truncate"
    max_chunks: int = 512  # windows per request when chunking (each up to the max length: 512 x 512 tokens)
    max_chunk_chars: int = 2_000_000  # characters per request when chunking, refused before any tokenising
    max_inputs: int = 2048  # texts per request (OpenAI's own limit)
    max_body_bytes: int = 16 * 1024 * 1024
    max_queue: int = 8192  # texts waiting; beyond it requests get 503 + Retry-After
    shutdown_timeout_s: float = 30.0
    # how long an idle keep-alive connection stays open. It must outlast the idle expiry of client pools
    # (httpx 5 s, aiohttp 15 s): when the server closes first, a client that reuses the connection at that
    # instant has its request land on a closing socket (httpx.ReadError / RemoteProtocolError). uvicorn's
    # default is 5 s, the same as httpx's; benchmarks/studies/soak_serve.py reproduces the race (short keep-alive).
    keep_alive_s: int = 75  # whole seconds: uvicorn's unit
    access_log: bool = False
    log_level: str = "info"

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_dir", Path(self.model_dir))
        if self.long not in ("truncate", "error", "chunk"):
            raise ValueError(f"long must be truncate, error or chunk, got {self.long!r}")
        for name in (
            "max_chunks",
            "max_chunk_chars",
            "max_batch_tokens",
            "max_batch_size",
            "run_batch_tokens",
            "workers",
            "max_inputs",
            "max_body_bytes",
            "max_queue",
            "keep_alive_s",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 (or None for the physical cores), got {self.threads}")
        if self.streams is not None and self.streams < 1:
            raise ValueError(f"streams must be >= 1 (or None for the default), got {self.streams}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535 (0: any free port), got {self.port}")
        if self.shutdown_timeout_s < 0:
            raise ValueError(f"shutdown_timeout_s must be >= 0, got {self.shutdown_timeout_s}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError(f"the API key is empty; unset {API_KEY_ENV} or pass a non-empty --api-key")

    @property
    def engine_streams(self) -> int:
        """The OpenVINO batch streams the server's encoder is loaded with."""
        return self.streams if self.streams is not None else SERVE_STREAMS

    @staticmethod
    def api_key_from_env() -> str | None:
        """The key from ``ROSBERTA_API_KEY``, or None when unset or empty."""
        return os.environ.get(API_KEY_ENV) or None
