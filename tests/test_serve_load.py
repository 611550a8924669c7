"""The server under load and at the edges of its life: 64 concurrent clients with merged batches and no
cross-talk, the batcher itself, graceful shutdown with a request in flight, and a model that fails to load."""

from __future__ import annotations

import asyncio
import base64
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from benchmarks.harness.live_server import LiveServer  # noqa: E402
from rosberta_onnx import Encoder  # noqa: E402
from rosberta_serve.batcher import MicroBatcher, Overloaded, ShuttingDown  # noqa: E402

pytestmark = pytest.mark.timeout(240)

TASKS = [None, "search_query", "search_document", "classification", "clustering"]
CLIENTS, REQUESTS = 64, 2000
TOL = 1e-5  # relative L2 error allowed between a served vector and Encoder.encode's


def make_pool(n: int, seed: int = 0) -> list[str]:
    """Distinct texts from 1 to ~300 tokens, RU and EN words."""
    rng = random.Random(seed)
    words = (
        "слово дом кошка читает книгу быстро medium word house cat reads the book quickly river "
        "мост город ночь light day"
    ).split()
    out = []
    for i in range(n):
        k = rng.choice([1, 2, 3, 5, 8, 13, 20, 40, 120])
        out.append(f"{i} " + " ".join(rng.choice(words) for _ in range(k)))
    return out


@pytest.fixture(scope="module")
def enc(runtime_artifact):
    return Encoder.load(runtime_artifact, variant="fp32")


def metric(text: str, name: str) -> float:
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return float(values[name])


def cos_rows(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow  # a load test: 64 clients x 2000 requests
def test_64_concurrent_clients_no_errors_no_cross_talk(runtime_artifact, enc):
    pool = make_pool(240)
    want = {(task, norm): enc.encode(pool, task=task, normalize=norm) for task in TASKS for norm in (True, False)}
    counts = {task: np.array([len(x) for x in enc.tokenize(pool, task=task)]) for task in TASKS}
    # Precondition: any two different (text, task) vectors differ by far more than the tolerance of
    # the check below, so a response carrying another request's vector cannot pass. (Random tiny
    # weights make CLS vectors alike: cosine alone would not tell them apart.)
    for norm in (True, False):
        allv = np.concatenate([want[(task, norm)] for task in TASKS]).astype(np.float64)
        sq = (allv**2).sum(1)
        d2 = sq[:, None] + sq[None, :] - 2 * allv @ allv.T
        np.fill_diagonal(d2, np.inf)
        assert (np.sqrt(np.maximum(d2.min(), 0)) / np.sqrt(sq.max())) > 10 * TOL

    rng = random.Random(1)
    plan = []
    for _ in range(REQUESTS):
        idx = rng.sample(range(len(pool)), rng.choice([1, 1, 1, 2, 3, 5, 8, 16]))
        plan.append((rng.choice(["openai-float", "openai-b64", "tei"]), idx, rng.choice(TASKS), rng.random() < 0.3))
    failures: list[str] = []

    def check(kind, idx, task, raw, r) -> None:
        if r.status_code != 200:
            failures.append(f"{kind} {r.status_code} {r.text[:200]}")
            return
        body = r.json()
        if kind == "tei":
            got, norm = np.array(body, np.float32), not raw
        else:
            data = sorted(body["data"], key=lambda d: d["index"])
            if kind == "openai-b64":
                got = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in data])
            else:
                got = np.array([d["embedding"] for d in data], np.float32)
            norm = True
            if body["usage"]["prompt_tokens"] != int(counts[task][idx].sum()):
                failures.append(f"usage {body['usage']} != {int(counts[task][idx].sum())}")
        exp = want[(task, norm)][idx]
        if got.shape != exp.shape:
            failures.append(f"shape {got.shape} != {exp.shape}: {kind} texts={idx}")
            return
        rel = np.linalg.norm(got - exp, axis=1) / np.linalg.norm(exp, axis=1)
        if cos_rows(got, exp).min() < 0.99999 or rel.max() > TOL:
            failures.append(f"mismatch (rel. error {rel.max():.2e}): {kind} task={task} raw={raw} texts={idx}")

    async def client(queue: asyncio.Queue, http: httpx.AsyncClient) -> None:
        while not queue.empty():
            kind, idx, task, raw = queue.get_nowait()
            texts = [pool[i] for i in idx]
            try:
                if kind == "tei":
                    r = await http.post("/embed", json={"inputs": texts, "prompt_name": task, "normalize": not raw})
                else:
                    fmt = "base64" if kind == "openai-b64" else "float"
                    r = await http.post(
                        "/v1/embeddings", json={"input": texts, "model": "m", "task": task, "encoding_format": fmt}
                    )
            except httpx.HTTPError as exc:
                failures.append(f"{kind}: {type(exc).__name__}: {exc!r}")
                continue
            check(kind, idx, task, raw and kind == "tei", r)

    async def run(url: str) -> float:
        queue: asyncio.Queue = asyncio.Queue()
        for item in plan:
            queue.put_nowait(item)
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
            start = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(client(queue, http) for _ in range(CLIENTS))), timeout=150)
            return time.perf_counter() - start

    with LiveServer(runtime_artifact, "--variant", "fp32", "--max-wait-ms", "5", "--max-inputs", "64") as srv:
        elapsed = asyncio.run(run(srv.url))
        metrics = httpx.get(srv.url + "/metrics", timeout=10).text
        assert srv.alive()
    assert not failures, f"{len(failures)} failures, first: {failures[:5]}\nserver log:\n{srv.logs()[-3000:]}"
    assert metric(metrics, "rosberta_batch_requests_sum") == REQUESTS
    # The check above means something only if many requests really shared a batch with others.
    alone = metric(metrics, 'rosberta_batch_requests_bucket{le="1"}')
    batches = metric(metrics, "rosberta_batch_requests_count")
    assert REQUESTS - alone >= REQUESTS // 10, f"only {REQUESTS - alone:.0f} requests were served in merged batches"
    print(
        f"\n{REQUESTS} requests from {CLIENTS} clients in {elapsed:.1f} s: {batches:.0f} encoder calls, "
        f"{REQUESTS - alone:.0f} requests in merged batches"
    )


@pytest.mark.parametrize("merge", [True, False])
def test_batcher_merges_or_not_and_matches_encode(enc, merge):
    pool = make_pool(40, seed=3)
    groups = [pool[i : i + k] for i, k in zip(range(0, 40, 4), [1, 4, 2, 3, 4, 1, 2, 4, 3, 1])]

    async def go():
        b = MicroBatcher(enc, max_wait_ms=50, max_batch_size=16, max_batch_tokens=4096, merge=merge)
        b.start()
        try:
            return await asyncio.gather(
                *(b.submit(enc.tokenize(g), normalize=i % 2 == 0) for i, g in enumerate(groups))
            ), b.metrics
        finally:
            await b.close()

    results, m = asyncio.run(go())
    for i, (g, vecs) in enumerate(zip(groups, results)):
        assert cos_rows(vecs, enc.encode(g, normalize=i % 2 == 0)).min() >= 0.99999
        np.testing.assert_allclose(
            np.linalg.norm(vecs, axis=1),
            np.linalg.norm(enc.encode(g, normalize=i % 2 == 0), axis=1),
            rtol=1e-5,
        )
    calls = m.requests.count()
    assert calls == len(groups) if not merge else calls < len(groups)
    assert m.texts.total() == sum(map(len, groups))


def test_batcher_waits_only_while_requests_are_arriving(enc):
    """A lone request runs at once when nobody else is on the way; while someone is, it waits (up to max-wait-ms)
    and the late one joins its batch. Judged by the batcher's own count of calls, not by a clock."""

    async def two_requests(arriving):
        b = MicroBatcher(enc, max_wait_ms=60_000, arriving=arriving)
        b.start()
        try:
            first = asyncio.ensure_future(b.submit(enc.tokenize(["a lone query"]), normalize=True))
            await asyncio.sleep(0.2)  # the worker has seen the first request by now
            second = asyncio.ensure_future(b.submit(enc.tokenize(["a late one"]), normalize=True))
            await asyncio.gather(first, second)
            return b.metrics.requests.count(), first.done()
        finally:
            await b.close()

    assert asyncio.run(two_requests(lambda: 1)) == (1, True)  # someone was on the way: one merged call
    assert asyncio.run(two_requests(lambda: 0)) == (2, True)  # nobody was: the first ran alone, then the second


def test_batcher_refuses_work_beyond_its_queue_and_after_close(enc):
    async def go():
        b = MicroBatcher(enc, max_wait_ms=200, max_queue=2)
        b.start()
        first = asyncio.ensure_future(b.submit(enc.tokenize(["a", "b"]), normalize=True))
        await asyncio.sleep(0)  # queued, the worker is still waiting for company
        with pytest.raises(Overloaded, match="limit 2"):
            await b.submit(enc.tokenize(["c"]), normalize=True)
        await b.close()  # finishes what is queued...
        assert first.result().shape == (2, enc.dim)
        with pytest.raises(ShuttingDown):  # ...and takes nothing new
            await b.submit(enc.tokenize(["d"]), normalize=True)

    asyncio.run(go())


def test_graceful_shutdown_finishes_requests_in_flight(runtime_artifact, enc):
    texts = ["слово word " * 300 + str(i) for i in range(16)]  # 16 rows of 512 tokens: one batch per request
    want = enc.encode(texts)
    srv = LiveServer(runtime_artifact, "--variant", "fp32", "--max-batch-size", "16", "--threads", "1")
    srv.start()
    results: list = []
    try:

        def send(_):
            try:
                return httpx.post(srv.url + "/embed", json={"inputs": texts}, timeout=60)
            except Exception as exc:
                return exc

        with ThreadPoolExecutor(max_workers=12) as pool:
            futures = [pool.submit(send, i) for i in range(12)]
            # SIGTERM only once the server has taken every request (one not yet connected is not in flight and
            # may be refused) and some are queued behind a running batch, i.e. truly in flight.
            deadline = time.monotonic() + 30
            while True:
                text = httpx.get(srv.url + "/metrics", timeout=5).text
                taken = (
                    metric(text, "rosberta_requests_in_flight") - 1 + sum(f.done() for f in futures)
                )  # -1: this call
                if taken >= len(futures) and metric(text, "rosberta_queue_depth") >= 2:
                    break
                assert time.monotonic() < deadline and not all(f.done() for f in futures), srv.logs()
                time.sleep(0.01)
            srv.terminate()
            results = [f.result(timeout=60) for f in futures]
        rc = srv.stop(timeout=30)
    finally:
        srv.stop()
    errors = [r for r in results if not isinstance(r, httpx.Response) or r.status_code != 200]
    assert not errors, (errors[:3], srv.logs())
    for r in results:
        assert cos_rows(r.json(), want).min() >= 0.99999
    assert rc in (0, -15), srv.logs()  # -15: uvicorn re-raises SIGTERM after its graceful shutdown
    assert "shutdown complete" in srv.logs()
    with pytest.raises(httpx.TransportError):
        httpx.get(srv.url + "/health", timeout=2)


def test_a_model_that_fails_to_load_stops_the_server_with_an_error(runtime_artifact, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(runtime_artifact, broken)
    data = (broken / "model_int8.onnx").read_bytes()
    (broken / "model_int8.onnx").write_bytes(data[:-100] + bytes(100))  # checksum no longer matches
    r = subprocess.run(
        [sys.executable, "-m", "rosberta_onnx.cli", "serve", str(broken), "--variant", "int8", "--port", "0"],
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert b"error:" in r.stderr and b"model_int8.onnx" in r.stderr and b"Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "rosberta_onnx.cli", "serve", str(tmp_path / "nope")], capture_output=True, timeout=60
    )
    assert r.returncode == 2 and r.stderr.startswith(b"error:"), r.stderr
