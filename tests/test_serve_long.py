"""Long documents through the server: TEI's truncate and truncation_direction, the server's --long default, the
/embed_chunks route with spans, and the caps that refuse a huge text before any work."""

from __future__ import annotations

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from benchmarks.harness.live_server import LiveServer  # noqa: E402
from rosberta_onnx import Encoder  # noqa: E402

pytestmark = pytest.mark.timeout(180)

MAX_CHUNKS, MAX_CHUNK_CHARS = 12, 40_000


def _document() -> str:
    from rosberta_export.corpus import sts_pairs

    return " ".join(p.sentence1 for lang in ("ru", "en") for p in sts_pairs(lang, "dev")[:40])


DOC = _document()  # ~830 tokens with the test artifact's tokenizer: two windows


@pytest.fixture(scope="module")
def enc(runtime_artifact):
    return Encoder.load(runtime_artifact, variant="fp32")


@pytest.fixture(scope="module")
def http(runtime_artifact):
    flags = [
        "--variant",
        "fp32",
        "--long",
        "chunk",
        "--max-chunks",
        str(MAX_CHUNKS),
        "--max-chunk-chars",
        str(MAX_CHUNK_CHARS),
        "--max-body-bytes",
        str(16 * 2**20),
    ]
    with LiveServer(runtime_artifact, *flags) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        yield client


def cos(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_the_long_default_chunks_and_an_explicit_truncate_wins(http, enc):
    texts = ["короткий запрос", DOC]
    got = http.post("/embed", json={"inputs": texts, "prompt_name": "search_document"}).json()
    assert cos(got, enc.encode(texts, task="search_document", long="chunk")).min() >= 0.99999
    cut = http.post("/embed", json={"inputs": texts, "prompt_name": "search_document", "truncate": True}).json()
    assert cos(cut, enc.encode(texts, task="search_document")).min() >= 0.99999
    assert cos(cut[1], got[1]) < 0.99999  # the chunked document is more than its first window
    # the OpenAI route has no truncate field of its own: the server's default applies, and usage counts every window
    r = http.post("/v1/embeddings", json={"input": [DOC], "task": "search_document"}).json()
    windows = enc.plan([DOC], task="search_document")[0].rows
    assert r["usage"]["prompt_tokens"] == sum(map(len, windows)) > enc.max_length
    assert cos(r["data"][0]["embedding"], got[1]) >= 0.99999


def test_truncate_false_is_a_413_naming_the_input(http, enc):
    r = http.post("/embed", json={"inputs": ["ok", DOC], "truncate": False})
    assert r.status_code == 413 and r.json()["error_type"] == "Validation" and r.json()["field"] == "inputs[1]"
    assert f"has {enc.count_tokens([DOC])[0]} tokens" in r.json()["error"]


def test_left_truncation_keeps_the_end_and_the_prefix(http, enc):
    got = http.post(
        "/embed",
        json={"inputs": [DOC], "prompt_name": "search_query", "truncate": True, "truncation_direction": "Left"},
    ).json()[0]
    rows = enc.plan([DOC], task="search_query", long="truncate", direction="left")[0].rows
    short = enc.plan(["x"], task="search_query")[0]
    prefix = short.rows[0][: len(short.rows[0]) - short.tokens - 1]  # <s> and the prefix's ids
    assert rows[0][: len(prefix)] == prefix and rows[0][-2] == enc.plan([DOC])[0].rows[-1][-2]
    assert cos(got, enc.encode_ids(rows)[0]) >= 0.99999
    right = http.post("/embed", json={"inputs": [DOC], "prompt_name": "search_query", "truncate": True}).json()[0]
    assert cos(got, right) < 0.99999  # another window (random weights keep any two texts' vectors close)


def test_embed_chunks_returns_each_window_with_its_spans(http, enc):
    r = http.post(
        "/embed_chunks", json={"inputs": [DOC, "short"], "prompt_name": "search_document", "window": 200, "overlap": 25}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    want = enc.encode_chunks([DOC, "short"], task="search_document", window=200, overlap=25)
    for got, ch in zip(body, want):
        assert [(c["token_start"], c["token_end"]) for c in got["chunks"]] == [tuple(s) for s in ch.token_spans]
        assert [(c["start"], c["end"]) for c in got["chunks"]] == [tuple(s) for s in ch.char_spans]
        assert cos([c["embedding"] for c in got["chunks"]], ch.vectors).min() >= 0.99999
    first = body[0]["chunks"][0]
    assert DOC[first["start"] : first["end"]].startswith(DOC[:20])
    assert body[0]["tokens"] == enc.count_tokens([DOC], task="search_document")[0]


def test_a_huge_text_is_refused_before_any_work_and_so_are_too_many_windows(http):
    r = http.post("/embed_chunks", json={"inputs": ["word " * 2_000_000]})  # 10 MB, under the body limit
    assert r.status_code == 413 and "characters, more than this server chunks per request (40000)" in r.json()["error"]
    r = http.post("/embed", json={"inputs": [DOC] * 7})  # 14 windows > 12
    assert r.status_code == 413 and "windows, more than this server runs per request (12)" in r.json()["error"]
    r = http.post("/embed_chunks", json={"inputs": [DOC], "window": 10, "overlap": 10})
    assert r.status_code == 422 and "overlap must be a whole number" in r.json()["error"]
    r = http.post("/embed_chunks", json={"inputs": [DOC], "window": 9999})
    assert r.status_code == 422 and r.json()["field"] == "window"
