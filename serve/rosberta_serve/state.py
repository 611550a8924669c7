"""The server's shared state: model loading and readiness, auth, metrics, and the embed path.

Routes (:mod:`rosberta_serve.app`) stay thin: they parse a body and shape a response; everything
they share lives here. The model loads in the background after the socket is bound, so ``/health``
answers at once and ``/ready`` turns 200 only after the model is loaded *and* one warm-up batch has
run (ONNX Runtime allocates its arenas on the first calls; a load balancer should not send traffic
into that).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rosberta_onnx import (
    ChunkPlan,
    Chunks,
    Encoder,
    Manifest,
    PromptWarning,
    RosbertaError,
    TaskError,
    l2_normalize,
    mean_of_chunks,
    prepare_texts,
    select_variant,
)

from .batcher import BatchMetrics, MicroBatcher, Overloaded, ShuttingDown
from .config import ServeConfig
from .metrics import LATENCY_BUCKETS, SIZE_BUCKETS, Registry
from .tokens import TokenDetails
from .validation import ApiError

__all__ = ["ServerState"]

log = logging.getLogger("rosberta_serve")

# Requests with more characters than this are tokenised (for length checks and batch budgets) in a
# worker thread rather than on the event loop; below it the thread hop costs more than the work.
_INLINE_CHARS = 4096
_WARMUP = ["warm-up", "Сколько программистов нужно, чтобы вкрутить лампочку? " * 4]


class ServerState:
    def __init__(self, config: ServeConfig, *, on_fatal: Callable[[BaseException], None] | None = None) -> None:
        self.config = config
        # Read the manifest now: a wrong folder fails at start, and /info answers while the model loads.
        self.manifest = Manifest.read(config.model_dir)
        self.facts = self.manifest.model
        # Likewise a variant this machine can't run (fp16 on CPU, an int8 that failed its gate). For ``auto``
        # this is provisional: Encoder.load may measure the candidates and settle on another (see load()).
        self.variant = select_variant(self.manifest, config.variant).variant
        self.model_name = config.model_name or _default_name(self.manifest, config)
        self.status = "loading"
        self.error: str | None = None
        self.encoder: Encoder | None = None
        self.batcher: MicroBatcher | None = None
        self.tokens = TokenDetails(config.model_dir / self.manifest.tokenizer_file, max_length=self.facts.max_length)
        self._on_fatal = on_fatal
        self._key = config.api_key.encode() if config.api_key else None
        self.in_flight = 0
        self.arriving = 0  # embedding requests accepted but not yet queued (see Arrival)
        reg = self.registry = Registry()
        self.m_requests = reg.counter(
            "rosberta_requests_total", "HTTP requests by route and status code.", labelled=True
        )
        self.m_latency = reg.histogram(
            "rosberta_request_duration_seconds", "HTTP request latency by route.", LATENCY_BUCKETS, labelled=True
        )
        self.m_request_texts = reg.histogram("rosberta_request_texts", "Texts per embedding request.", SIZE_BUCKETS)
        reg.gauge("rosberta_requests_in_flight", "HTTP requests being handled now.", lambda: self.in_flight)
        reg.gauge("rosberta_model_ready", "1 once the model is loaded and warmed up.", lambda: self.status == "ready")
        self.batch_metrics = BatchMetrics(reg)
        reg.gauge(
            "rosberta_queue_depth",
            "Requests waiting to be batched.",
            lambda: self.batcher.queue_depth if self.batcher else 0,
        )
        reg.gauge(
            "rosberta_queue_texts",
            "Texts waiting to be batched.",
            lambda: self.batcher.queued_texts if self.batcher else 0,
        )

    # -- lifecycle -----------------------------------------------------------------------------
    async def load(self) -> None:
        """Load the encoder, warm it up, start the batcher; on failure record it and call ``on_fatal``."""
        cfg = self.config
        started = time.perf_counter()
        try:
            enc = await asyncio.to_thread(
                Encoder.load,
                cfg.model_dir,
                variant=cfg.variant,
                threads=cfg.threads,
                spinning=cfg.spinning,
                streams=cfg.engine_streams,
            )
            self.variant = enc.variant
            await asyncio.to_thread(
                enc.encode, _WARMUP * 4, batch_size=cfg.max_batch_size, max_batch_tokens=cfg.run_batch_tokens
            )
            batcher = MicroBatcher(
                enc,
                max_batch_tokens=cfg.max_batch_tokens,
                max_batch_size=cfg.max_batch_size,
                run_batch_tokens=cfg.run_batch_tokens,
                max_wait_ms=cfg.max_wait_ms if cfg.batching else 0.0,
                max_queue=cfg.max_queue,
                workers=cfg.workers,
                merge=cfg.batching,
                arriving=lambda: self.arriving,
                metrics=self.batch_metrics,
            )
            batcher.start()
        except Exception as exc:
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("loading %s failed: %s", cfg.model_dir, self.error)
            if self._on_fatal is not None:
                self._on_fatal(exc)
            return
        self.encoder, self.batcher, self.status = enc, batcher, "ready"
        log.info(
            "model ready: %s variant=%s [%s] dim=%d providers=%s batching=%s (%.1f s)",
            self.model_name,
            enc.variant,
            enc.selection,
            enc.dim,
            enc.providers,
            "on" if cfg.batching else "off",
            time.perf_counter() - started,
        )

    async def close(self) -> None:
        """Finish queued and running batches (uvicorn has already drained in-flight HTTP requests)."""
        if self.batcher is not None:
            await self.batcher.close()
        log.info("shutdown complete: batcher drained")

    # -- per request ---------------------------------------------------------------------------
    def check_auth(self, authorization: str | None) -> None:
        if self._key is None:
            return
        headers = {"WWW-Authenticate": "Bearer"}
        if not authorization:
            raise ApiError(
                401,
                "missing API key: send the header 'Authorization: Bearer <key>'",
                field="authorization",
                kind="authentication_error",
                headers=headers,
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._key):
            raise ApiError(401, "invalid API key", field="authorization", kind="authentication_error", headers=headers)

    def require_ready(self) -> Encoder:
        if self.status == "ready" and self.encoder is not None:
            return self.encoder
        if self.status == "failed":
            raise ApiError(503, f"the model failed to load: {self.error}", kind="server_error")
        raise ApiError(
            503,
            "the model is still loading; retry shortly (GET /ready turns 200 when it is ready)",
            kind="server_error",
            headers={"Retry-After": "1"},
        )

    def prepare(self, texts: list[str], task: str | None, *, task_field: str) -> list[str]:
        """Clean the texts and add the task prefix (per request, so requests with any task can merge)."""
        try:
            # a text that already carries a prefix is warned about; a server has no one to warn,
            # and under `-W error` the warning would become a failed request.
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always", PromptWarning)
                return prepare_texts(texts, task=task, prompts=self.facts.prompts)
        except TaskError as exc:
            raise ApiError(422, f"{task_field!r}: {exc}", field=task_field) from None

    def arrival(self) -> Arrival:
        """Count an embedding request as on its way to the queue, from its first byte to ``submit``."""
        return Arrival(self)

    async def _plan(
        self,
        enc: Encoder,
        texts: list[str],
        *,
        task: str | None,
        task_field: str,
        text_field: str,
        long: str,
        direction: str = "right",
        window: int | None = None,
        overlap: int | None = None,
        item_names: Sequence[str] | None = None,
    ) -> list[ChunkPlan]:
        """The request's token rows, planned once (truncated, or in windows); errors as the client should see them."""
        if long == "chunk" and sum(map(len, texts)) > self.config.max_chunk_chars:
            raise ApiError(
                413,
                f"{text_field} holds {sum(map(len, texts))} characters, more than this server chunks "
                f"per request ({self.config.max_chunk_chars}); send the document in parts",
                field=text_field,
            )

        def plan() -> list[ChunkPlan]:
            # a text that already carries a prefix is warned about; a server has no one to warn, and under
            # `-W error` the warning would become a failed request
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always", PromptWarning)
                return enc.plan(
                    texts,
                    task=task,
                    long="chunk" if long == "chunk" else "truncate",
                    direction=direction,
                    window=window,
                    overlap=overlap,
                )

        try:
            plans = plan() if sum(map(len, texts)) <= _INLINE_CHARS else await asyncio.to_thread(plan)
        except TaskError as exc:
            raise ApiError(422, f"{task_field!r}: {exc}", field=task_field) from None
        except ValueError as exc:  # a window or overlap that cannot be
            raise ApiError(422, str(exc), field="window" if "window" in str(exc).split("=")[0] else "overlap") from None
        limit = enc.max_length
        over = [i for i, p in enumerate(plans) if p.total > limit]
        if long == "error" and over:
            i = over[0]
            item = item_names[i] if item_names else f"{text_field}[{i}]"
            raise ApiError(
                413,
                f"{item} has {plans[i].total} tokens (task prefix and special tokens "
                f"included), more than this model's max length of {limit}; {len(over)} input(s) are "
                f"over. Send truncate=true to cut them, or split the text.",
                field=item,
            )
        windows = sum(len(p.rows) for p in plans)
        if long == "chunk" and windows > self.config.max_chunks:
            raise ApiError(
                413,
                f"{text_field} makes {windows} windows, more than this server runs per request "
                f"({self.config.max_chunks}); send fewer or shorter texts, or larger windows",
                field=text_field,
            )
        return plans

    async def _run(self, plans: list[ChunkPlan], arrival: Arrival | None) -> np.ndarray:
        """Every row of ``plans`` through the batcher (shared with other requests); raw vectors, rows in order."""
        self.m_request_texts.observe(len(plans))
        if arrival is not None:
            arrival.done(queued=True)
        try:
            assert self.batcher is not None  # set with the encoder, which require_ready() returned
            return await self.batcher.submit([r for p in plans for r in p.rows], normalize=False)
        except Overloaded as exc:
            raise ApiError(
                503, str(exc), kind="server_error", tei_type="Overloaded", headers={"Retry-After": "1"}
            ) from None
        except ShuttingDown as exc:
            raise ApiError(503, str(exc), kind="server_error") from None
        except RosbertaError as exc:
            raise ApiError(500, str(exc), kind="server_error") from None

    async def embed(
        self,
        texts: list[str],
        *,
        task: str | None,
        task_field: str,
        text_field: str,
        normalize: bool | None,
        truncate: bool | None,
        direction: str = "right",
        arrival: Arrival | None = None,
        item_names: Sequence[str] | None = None,
    ) -> Embedded:
        """One vector per text. ``truncate`` None: the server's ``--long`` (truncate, error or chunk).
        ``item_names``: how errors name each text (default ``text_field[i]``)."""
        enc = self.require_ready()
        long = self.config.long if truncate is None else ("truncate" if truncate else "error")
        plans = await self._plan(
            enc,
            texts,
            task=task,
            task_field=task_field,
            text_field=text_field,
            long=long,
            direction=direction,
            item_names=item_names,
        )
        vecs = await self._run(plans, arrival)
        norm = self.facts.normalize if normalize is None else normalize
        if norm:
            vecs = l2_normalize(vecs)
        out, at = np.empty((len(plans), enc.dim), np.float32), 0
        for i, p in enumerate(plans):
            k = len(p.rows)
            out[i] = mean_of_chunks(Chunks(vecs[at : at + k], p.token_spans, p.char_spans, p.tokens), norm)
            at += k
        totals = np.array([p.total for p in plans], dtype=np.int64)
        seen = np.array([sum(map(len, p.rows)) for p in plans], dtype=np.int64)
        return Embedded(out, totals, (totals > enc.max_length) & (long != "chunk"), seen)

    async def embed_chunks(
        self,
        texts: list[str],
        *,
        task: str | None,
        normalize: bool | None,
        window: int | None,
        overlap: int | None,
        arrival: Arrival | None = None,
    ) -> list[tuple[ChunkPlan, np.ndarray]]:
        """Each text's windows with their vectors (``/embed_chunks``)."""
        enc = self.require_ready()
        plans = await self._plan(
            enc,
            texts,
            task=task,
            task_field="prompt_name",
            text_field="inputs",
            long="chunk",
            window=window,
            overlap=overlap,
        )
        vecs = await self._run(plans, arrival)
        if self.facts.normalize if normalize is None else normalize:
            vecs = l2_normalize(vecs)
        out, at = [], 0
        for p in plans:
            out.append((p, vecs[at : at + len(p.rows)]))
            at += len(p.rows)
        return out


@dataclass(frozen=True)
class Embedded:
    """A request's vectors, one per text, with what the model saw of each."""

    embeddings: np.ndarray  # float32 (n, dim)
    token_counts: np.ndarray  # int64 (n,): tokens of each text before truncation, prefix and specials included
    truncated: np.ndarray  # bool (n,)
    seen: np.ndarray  # int64 (n,): tokens the model ran for each text (all of its windows' when chunked)


class Arrival:
    """Context manager around one embedding request's way in: body, parsing, tokenising.

    While any are open the batcher may wait (up to max-wait-ms) for them to join the batch; when one
    ends without reaching the queue (a bad request), the batcher is told to look again.
    """

    def __init__(self, state: ServerState) -> None:
        self._state, self._open = state, True
        state.arriving += 1

    def done(self, *, queued: bool = False) -> None:
        if self._open:
            self._open = False
            self._state.arriving -= 1
            if not queued and self._state.batcher is not None:
                self._state.batcher.poke()

    def __enter__(self) -> Arrival:
        return self

    def __exit__(self, *exc) -> None:
        self.done()


def _default_name(manifest: Manifest, config: ServeConfig) -> str:
    src = manifest.source
    if src.get("kind") != "local" and src.get("model"):
        return str(src["model"])
    return config.model_dir.resolve().name
