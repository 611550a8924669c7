"""Dynamic batching: concurrent requests merged into token-budgeted encoder calls, run off the event loop.

Why: one ONNX Runtime call on 32 short queries costs far less than 32 calls on one query each, and
on a CPU the difference is most of the throughput. So a request does not run on its own; it joins a
queue, and a worker takes requests from the front until one of these holds:

- the oldest waiting request has waited ``max_wait_ms`` (its latency cost is bounded),
- the merged batch would exceed ``max_batch_tokens`` padded tokens (rows x longest row) or
  ``max_batch_size`` rows, or
- nothing more is on its way: waiting only pays while other requests are arriving, so the server
  passes an ``arriving`` callable (requests accepted but not yet queued) and a lone client pays no
  batching delay, while a crowd still gets merged. Requests that queue up while a batch runs are
  merged into the next one without any wait.

Then it runs ONE ``Encoder.encode_ids`` call for all their token rows in a worker thread and splits
the results back per request. Requests arrive already tokenised (``Encoder.plan``: truncated, or in
windows for long documents), so nothing is tokenised twice. Inside that call the encoder sorts the rows
by length and runs them in ONNX Runtime calls of at most ``run_batch_tokens`` padded tokens: on a CPU, runs of a few hundred
tokens are faster per token than big ones (the activations stay in cache; measured on the 2-core
Zen4 dev box: 29 short queries/s at 128-256 tokens per run, 20/s at 2048, 19/s one query per run),
and sorting keeps the padding small. Rows carry their task prefix (applied per request), so requests with
different tasks merge freely; vectors come back raw and each request's own ``normalize`` choice is
applied after the split (L2 normalisation is row-wise, so this gives the same numbers
``Encoder.encode`` gives). Over-long texts are cut or refused before queuing by the caller, so nothing
one client sends can fail a batch shared with others; if a merged call fails anyway (say, a non-finite
output), each request is re-run alone so only the culprit gets the error.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from rosberta_onnx import Encoder, RosbertaError, l2_normalize

from .metrics import LATENCY_BUCKETS, SIZE_BUCKETS, TOKEN_BUCKETS, Registry

__all__ = ["MicroBatcher", "BatchMetrics", "ShuttingDown", "Overloaded"]


class ShuttingDown(RosbertaError, RuntimeError):
    """The server is stopping and takes no new work."""


class Overloaded(RosbertaError, RuntimeError):
    """The queue already holds ``max_queue`` texts."""


class BatchMetrics:
    """What the batcher reports to ``/metrics`` (registered once, so series exist before the model loads)."""

    def __init__(self, registry: Registry) -> None:
        self.texts = registry.histogram("rosberta_batch_texts", "Texts per encoder call (merged batch).", SIZE_BUCKETS)
        self.requests = registry.histogram(
            "rosberta_batch_requests", "Requests merged into one encoder call.", SIZE_BUCKETS
        )
        self.padded_tokens = registry.histogram(
            "rosberta_batch_padded_tokens", "Padded tokens (rows x longest row) per merged batch.", TOKEN_BUCKETS
        )
        self.inference = registry.histogram(
            "rosberta_inference_seconds", "Wall time of one encoder call.", LATENCY_BUCKETS
        )
        self.queue_wait = registry.histogram(
            "rosberta_queue_wait_seconds", "Time a request waited in the queue before its batch ran.", LATENCY_BUCKETS
        )
        self.tokens = registry.counter(
            "rosberta_tokens_total", "Tokens embedded (after truncation, prefix and special tokens included)."
        )
        self.texts_total = registry.counter("rosberta_texts_total", "Texts embedded.")


@dataclass(eq=False)
class _Job:
    rows: list[list[int]]  # token ids as the model sees them
    normalize: bool
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Queue + workers that merge concurrent requests into encoder calls.

    ``merge=False`` turns dynamic batching off: each request becomes its own encoder call (still run
    off the event loop, still one at a time per worker, still split into ``run_batch_tokens`` runs),
    the baseline the benchmark compares against.
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        max_batch_tokens: int = 8192,
        max_batch_size: int = 64,
        run_batch_tokens: int = 256,
        max_wait_ms: float = 5.0,
        max_queue: int = 4096,
        workers: int = 1,
        merge: bool = True,
        arriving: Callable[[], int] | None = None,
        metrics: BatchMetrics | None = None,
    ) -> None:
        for name, value in [
            ("max_batch_tokens", max_batch_tokens),
            ("max_batch_size", max_batch_size),
            ("run_batch_tokens", run_batch_tokens),
            ("max_queue", max_queue),
            ("workers", workers),
        ]:
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.encoder = encoder
        self.max_batch_tokens = max_batch_tokens
        self.run_batch_tokens = run_batch_tokens
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.workers = workers
        self.merge = merge
        self._arriving = arriving
        self._pending: collections.deque[_Job] = collections.deque()
        self._queued_texts = 0
        self._running = 0
        self._wakeup: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self.metrics = metrics or BatchMetrics(Registry())

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers; call from inside the running event loop."""
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="rosberta-infer")
        self._tasks = [asyncio.create_task(self._worker(), name=f"rosberta-batcher-{i}") for i in range(self.workers)]

    async def close(self) -> None:
        """Refuse new work, finish everything already queued or running, stop the threads."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @property
    def queue_depth(self) -> int:
        """Requests waiting to be batched."""
        return len(self._pending)

    @property
    def queued_texts(self) -> int:
        """Texts waiting to be batched."""
        return self._queued_texts

    def poke(self) -> None:
        """Make a waiting worker look again (e.g. ``arriving`` dropped without a submit)."""
        if self._wakeup is not None:
            self._wakeup.set()

    # -- submitting ----------------------------------------------------------------------------
    async def submit(self, rows: list[list[int]], *, normalize: bool) -> np.ndarray:
        """Embed token ``rows`` (each at most the model's max length, as ``Encoder.plan`` makes them) as part of
        some batch; float32 ``(len(rows), dim)``."""
        if self._closing or self._wakeup is None:
            raise ShuttingDown("the server is shutting down and accepts no new requests")
        if self._queued_texts and self._queued_texts + len(rows) > self.max_queue:
            raise Overloaded(f"the queue holds {self._queued_texts} texts (limit {self.max_queue}); retry shortly")
        if not rows:
            return np.empty((0, self.encoder.dim), np.float32)
        job = _Job(rows, normalize, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._queued_texts += len(rows)
        self._wakeup.set()
        return await job.future

    # -- the worker ----------------------------------------------------------------------------
    def _budget_reached(self) -> bool:
        """Would the queued jobs already fill one batch (so waiting longer gains nothing)?"""
        rows = longest = 0
        for job in self._pending:
            rows += len(job.rows)
            longest = max(longest, max(map(len, job.rows)))
            if rows >= self.max_batch_size or rows * longest >= self.max_batch_tokens:
                return True
        return False

    def _take(self) -> list[_Job]:
        """Jobs from the front of the queue that fit one batch (always at least one)."""
        batch: list[_Job] = []
        rows = longest = 0
        while self._pending:
            job = self._pending[0]
            n, width = rows + len(job.rows), max(longest, max(map(len, job.rows)))
            if batch and (not self.merge or n > self.max_batch_size or n * width > self.max_batch_tokens):
                break
            self._pending.popleft()
            self._queued_texts -= len(job.rows)
            if job.future.cancelled():  # the client went away while queued
                continue
            batch.append(job)
            rows, longest = n, width
        return batch

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        wakeup = self._wakeup
        if wakeup is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        while True:
            while not self._pending:
                if self._closing:
                    return
                wakeup.clear()
                await wakeup.wait()
            if self.merge and not self._closing:
                deadline = self._pending[0].enqueued + self.max_wait
                while self._pending and not self._closing and not self._budget_reached():
                    if self._arriving is not None and self._arriving() <= 0:
                        break  # nobody else is coming: waiting would only add latency
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    wakeup.clear()
                    try:
                        await asyncio.wait_for(wakeup.wait(), remaining)
                    except asyncio.TimeoutError:
                        break
            batch = self._take()
            if not batch:
                continue
            # Another worker may be waiting on the same wakeup; let it look at what is left.
            if self._pending:
                wakeup.set()
            now = time.monotonic()
            for job in batch:
                self.metrics.queue_wait.observe(now - job.enqueued)
            self._running += 1
            try:
                outcomes = await loop.run_in_executor(self._executor, self._run_batch, batch)
            finally:
                self._running -= 1
            for job, outcome in zip(batch, outcomes):
                if job.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    # -- in the inference thread -----------------------------------------------------------------
    def _run_batch(self, batch: list[_Job]) -> list[np.ndarray | BaseException]:
        rows = [r for job in batch for r in job.rows]
        longest = max(map(len, rows))
        start = time.perf_counter()
        try:
            vecs = self.encoder.encode_ids(
                rows, normalize=False, batch_size=self.max_batch_size, max_batch_tokens=self.run_batch_tokens
            )
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            return [out for job in batch for out in self._run_batch([job])]
        m = self.metrics
        m.inference.observe(time.perf_counter() - start)
        m.texts.observe(len(rows))
        m.requests.observe(len(batch))
        m.padded_tokens.observe(len(rows) * longest)
        m.tokens.inc(float(sum(map(len, rows))))
        m.texts_total.inc(float(len(rows)))
        outcomes: list[np.ndarray | BaseException] = []
        offset = 0
        for job in batch:
            end = offset + len(job.rows)
            outcomes.append(l2_normalize(vecs[offset:end]) if job.normalize else vecs[offset:end])
            offset = end
        return outcomes
