"""The embedding server as clients see it: the real `openai` client and plain HTTP against a live
``rosberta-onnx serve`` on 127.0.0.1 (tiny stand-in, fp32), compared with ``Encoder.encode``."""

from __future__ import annotations

import base64
import json
import sys
import time

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from benchmarks.harness.live_server import LiveServer  # noqa: E402
from rosberta_onnx import Encoder, PromptWarning, __version__  # noqa: E402
from rosberta_onnx.cli import main  # noqa: E402
from rosberta_onnx.hardware import physical_cores  # noqa: E402

pytestmark = pytest.mark.timeout(180)

KEY = "test-key-123"
TEXTS = [
    "Человек в твердой шляпе танцует.",
    "A man is playing a flute.",
    "я",
    "",
    "Мужчина разбрасывает измельченный сыр на вареную пиццу. " * 5,
    "search_query: уже с префиксом",
]
LONG = "слово word " * 400  # > 512 tokens
MAX_INPUTS, MAX_BODY = 32, 100_000


@pytest.fixture(scope="module")
def enc(runtime_artifact):
    return Encoder.load(runtime_artifact, variant="fp32")


@pytest.fixture(scope="module")
def server(runtime_artifact):
    with LiveServer(
        runtime_artifact,
        "--variant",
        "fp32",
        "--max-inputs",
        str(MAX_INPUTS),
        "--max-body-bytes",
        str(MAX_BODY),
        "--max-wait-ms",
        "2",
        env={"ROSBERTA_API_KEY": KEY},
    ) as srv:
        yield srv
    assert srv.returncode in (0, -15), srv.logs()  # -15: uvicorn re-raises SIGTERM after its graceful shutdown


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
        yield client


def cos_rows(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def tokens_seen(enc, texts, task=None):
    return sum(len(ids) for ids in enc.tokenize(texts, task=task))


def test_openai_client_matches_encoder_with_usage_and_base64(server, enc):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, timeout=30, max_retries=0)
    texts = TEXTS + [LONG]
    want = enc.encode(texts)
    model_name = httpx.get(server.url + "/info", headers={"Authorization": f"Bearer {KEY}"}).json()["model_id"]
    # The client asks for base64 unless told otherwise, and decodes it itself.
    for fmt in ("float", None):
        kwargs = {"encoding_format": fmt} if fmt else {}
        r = client.embeddings.create(model="anything", input=texts, **kwargs)
        got = np.array([d.embedding for d in sorted(r.data, key=lambda d: d.index)])
        assert got.shape == want.shape
        assert cos_rows(got, want).min() >= 0.99999
        assert r.usage.prompt_tokens == r.usage.total_tokens == tokens_seen(enc, texts)
        assert r.model == model_name
    one = client.embeddings.create(model="m", input="A man is playing a flute.", encoding_format="float")
    assert len(one.data) == 1 and cos_rows([one.data[0].embedding], want[1:2]).min() >= 0.99999
    # The task prefix rides in extra_body; default is no prefix.
    q = client.embeddings.create(
        model="m", input=TEXTS[:3], encoding_format="float", extra_body={"task": "search_query"}
    )
    assert cos_rows([d.embedding for d in q.data], enc.encode(TEXTS[:3], task="search_query")).min() >= 0.99999
    assert q.usage.prompt_tokens == tokens_seen(enc, TEXTS[:3], task="search_query")


def test_base64_decodes_to_the_same_floats(http, enc):
    body = {"input": TEXTS, "model": "m"}
    f = http.post("/v1/embeddings", json={**body, "encoding_format": "float"}).json()
    b = http.post("/v1/embeddings", json={**body, "encoding_format": "base64"}).json()
    floats = np.array([d["embedding"] for d in f["data"]], dtype=np.float32)
    decoded = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in b["data"]])
    np.testing.assert_array_equal(decoded, floats)
    assert f["usage"] == b["usage"] and f["object"] == "list" and [d["index"] for d in f["data"]] == list(range(6))
    assert cos_rows(decoded, enc.encode(TEXTS)).min() >= 0.99999


def test_tei_embed_normalize_prompt_and_bare_string(http, enc):
    r = http.post("/embed", json={"inputs": TEXTS, "prompt_name": "search_document", "normalize": False})
    assert r.status_code == 200
    with pytest.warns(PromptWarning):  # TEXTS[5] already has a prefix: the server leaves it alone, silently
        want = enc.encode(TEXTS, task="search_document", normalize=False)
    got = np.array(r.json())
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0)
    one = http.post("/embed", json={"inputs": "A man is playing a flute."}).json()
    assert len(one) == 1 and cos_rows(one, enc.encode(["A man is playing a flute."])).min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(one, axis=1), 1.0, atol=1e-5)


def test_huggingface_hub_client_feature_extraction_and_similarity(server, enc, monkeypatch):
    """``huggingface_hub.InferenceClient`` pointed at the server's URL posts to TEI's ``/`` (what LangChain's and
    many apps' "Hugging Face endpoint" embeddings use), unmodified."""
    hub = pytest.importorskip("huggingface_hub")
    # CI runs with HF_HUB_OFFLINE=1 (nothing may reach the hub), which the client applies to every URL, loopback too
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    client = hub.InferenceClient(model=server.url, token=KEY, timeout=30)
    got = client.feature_extraction(TEXTS[0])
    np.testing.assert_allclose(np.asarray(got).reshape(1, -1), enc.encode([TEXTS[0]]), atol=1e-5)
    q = client.feature_extraction(TEXTS[1], prompt_name="search_query", normalize=True)
    np.testing.assert_allclose(np.asarray(q).reshape(1, -1), enc.encode([TEXTS[1]], task="search_query"), atol=1e-5)
    scores = client.sentence_similarity(TEXTS[0], other_sentences=TEXTS[1:4])
    v = enc.encode(TEXTS[:4])
    np.testing.assert_allclose(scores, v[1:] @ v[0], atol=1e-5)


def test_llama_index_tei_embeddings_with_our_prefixes_as_instructions(server, enc):
    tei = pytest.importorskip("llama_index.embeddings.text_embeddings_inference")
    model = tei.TextEmbeddingsInference(
        model_name="ru-en-rosberta",
        base_url=server.url,
        auth_token=KEY,
        query_instruction="search_query:",  # llama-index joins instruction and text with one space: our prefix
        text_instruction="search_document:",
        timeout=30,
    )
    q = model.get_query_embedding(TEXTS[0])
    np.testing.assert_allclose(np.asarray([q]), enc.encode([TEXTS[0]], task="search_query"), atol=1e-5)
    docs = model.get_text_embedding_batch(TEXTS[1:3])
    np.testing.assert_allclose(np.asarray(docs), enc.encode(TEXTS[1:3], task="search_document"), atol=1e-5)


def test_tei_similarity_route_compat_route_and_decode(http, enc):
    body = {
        "inputs": {"source_sentence": TEXTS[1], "sentences": TEXTS[:3]},
        "parameters": {"prompt_name": "clustering"},
    }
    r = http.post("/similarity", json=body)
    v = enc.encode([TEXTS[1], *TEXTS[:3]], task="clustering")
    assert r.status_code == 200 and np.allclose(r.json(), v[1:] @ v[0], atol=1e-5)
    assert np.allclose(http.post("/", json=body).json(), r.json(), atol=1e-6)  # "/" dispatches on the body's shape
    embedded = http.post("/", json={"inputs": TEXTS[:2], "normalize": True})
    assert np.allclose(embedded.json(), enc.encode(TEXTS[:2]), atol=1e-5)
    # /decode: the tokenizer's own decoder; one sequence -> one string, a list of sequences -> a list
    ids = [list(map(int, row)) for row in enc.tokenize(TEXTS[:2])]
    assert http.post("/decode", json={"ids": ids[0]}).json() == TEXTS[0]
    assert http.post("/decode", json={"ids": ids}).json() == TEXTS[:2]
    kept = http.post("/decode", json={"ids": ids[1], "skip_special_tokens": False}).json()
    assert kept.startswith("<s>") and kept.endswith("</s>") and TEXTS[1] in kept
    # per-token vectors are not served, and the answer says why in TEI's error shape
    r = http.post("/embed_all", json={"inputs": "a"})
    assert r.status_code == 501 and r.json()["error_type"] == "Backend" and "/embed" in r.json()["error"]


def test_tei_tokenize_matches_the_runtime_tokenizer(http, enc):
    texts = ["hello world", "Привет, мир"]
    rows = http.post("/tokenize", json={"inputs": texts, "prompt_name": "search_query"}).json()
    assert [[t["id"] for t in row] for row in rows] == enc.tokenize(texts, task="search_query")
    first = rows[0]
    assert first[0]["special"] and first[0]["start"] is None and first[-1]["special"]
    prepared = "search_query: hello world"
    assert "".join(prepared[t["start"] : t["stop"]] for t in first if not t["special"]).replace(
        " ", ""
    ) == prepared.replace(" ", "")
    # Untruncated by default (to count tokens of long texts); truncate=true cuts like the encoder.
    full = http.post("/tokenize", json={"inputs": LONG}).json()[0]
    assert len(full) == int(enc.count_tokens([LONG])[0]) > enc.max_length
    cut = http.post("/tokenize", json={"inputs": [LONG], "truncate": True}).json()[0]
    assert [t["id"] for t in cut] == enc.tokenize([LONG])[0]


def test_info_models_health_ready_metrics(server, http, enc):
    info = http.get("/info").json()
    assert (info["dim"], info["max_input_length"], info["model_dtype"]) == (enc.dim, enc.max_length, "fp32")
    # the fields TEI clients read (llama-index, huggingface_hub), with the values this server enforces
    assert (info["max_client_batch_size"], info["auto_truncate"], info["version"]) == (MAX_INPUTS, True, __version__)
    assert info["prompts"] == dict(enc.facts.prompts) and info["status"] == "ready"
    assert http.get("/v1/models").json()["data"][0]["id"] == info["model_id"]
    # Liveness and readiness need no key; everything else does.
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    assert httpx.get(server.url + "/ready").status_code == 200
    assert httpx.get(server.url + "/metrics").status_code == 401
    http.post("/embed", json={"inputs": ["metrics probe"]})
    text = http.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    lines = dict(line.rsplit(" ", 1) for line in text.text.splitlines() if line and not line.startswith("#"))
    assert float(lines['rosberta_requests_total{route="/embed",status="200"}']) >= 1
    assert float(lines["rosberta_model_ready"]) == 1 and float(lines["rosberta_queue_depth"]) == 0
    assert float(lines["rosberta_tokens_total"]) > 0 and float(lines["rosberta_batch_texts_count"]) >= 1
    assert float(lines['rosberta_request_duration_seconds_bucket{route="/embed",le="+Inf"}']) >= 1


OVER = {"input": ["ok", LONG], "truncate": False}
BAD = [
    # (route, body (dict -> JSON, bytes -> raw), headers, status, field)
    ("/v1/embeddings", b'{"input": ["a",', None, 422, "body"),
    ("/v1/embeddings", b"\xff\xfe not utf8", None, 422, "body"),
    ("/v1/embeddings", b'["a", "b"]', None, 422, "body"),
    ("/v1/embeddings", {"model": "m"}, None, 422, "input"),
    ("/v1/embeddings", {"input": 7}, None, 422, "input"),
    ("/v1/embeddings", {"input": ["a", 3]}, None, 422, "input[1]"),
    ("/v1/embeddings", {"input": [[1, 2, 3]]}, None, 422, "input[0]"),
    ("/v1/embeddings", {"input": []}, None, 422, "input"),
    ("/v1/embeddings", {"input": "a", "encoding_format": "bits"}, None, 422, "encoding_format"),
    ("/v1/embeddings", {"input": "a", "task": "query"}, None, 422, "task"),
    ("/v1/embeddings", {"input": "a", "dimensions": 12}, None, 422, "dimensions"),
    ("/v1/embeddings", {"input": "a", "truncate": "no"}, None, 422, "truncate"),
    ("/v1/embeddings", OVER, None, 413, "input[1]"),
    ("/v1/embeddings", {"input": ["x"] * (MAX_INPUTS + 1)}, None, 413, "input"),
    ("/v1/embeddings", {"input": ["x" * 4000] * 30}, None, 413, "body"),
    ("/v1/embeddings", {"input": "a"}, {"Authorization": ""}, 401, "authorization"),
    ("/v1/embeddings", {"input": "a"}, {"Authorization": "Bearer wrong"}, 401, "authorization"),
    ("/embed", {"inputs": [None]}, None, 422, "inputs[0]"),
    ("/embed", {"inputs": "a", "normalize": 1}, None, 422, "normalize"),
    ("/embed", {"inputs": "a", "prompt_name": "nope"}, None, 422, "prompt_name"),
    ("/embed", {"inputs": "a", "truncation_direction": "Middle"}, None, 422, "truncation_direction"),
    ("/embed", {"inputs": ["fine", LONG], "truncate": False}, None, 413, "inputs[1]"),
    ("/tokenize", {"inputs": {"a": 1}}, None, 422, "inputs"),
    ("/", {"inputs": [None]}, None, 422, "inputs[0]"),
    ("/similarity", {"inputs": "a"}, None, 422, "inputs"),
    ("/similarity", {"inputs": {"source_sentence": 1, "sentences": ["a"]}}, None, 422, "inputs.source_sentence"),
    ("/similarity", {"inputs": {"source_sentence": "a", "sentences": ["b", 2]}}, None, 422, "inputs.sentences[1]"),
    ("/similarity", {"inputs": {"source_sentence": "a"}}, None, 422, "inputs.sentences"),
    ("/", {"inputs": {"source_sentence": "a", "sentences": []}}, None, 422, "inputs.sentences"),
    (
        "/similarity",
        {"inputs": {"source_sentence": "a", "sentences": ["b"]}, "parameters": {"prompt_name": "nope"}},
        None,
        422,
        "parameters.prompt_name",
    ),
    (
        "/similarity",
        {"inputs": {"source_sentence": "a", "sentences": ["b", LONG]}, "parameters": {"truncate": False}},
        None,
        413,
        "inputs.sentences[1]",
    ),
    ("/decode", {"ids": "abc"}, None, 422, "ids"),
    ("/decode", {"ids": [0, -2]}, None, 422, "ids[1]"),
    ("/decode", {"ids": [[0], [2, 10**9]]}, None, 422, "ids[1][1]"),
    ("/decode", {"ids": [[0], 5]}, None, 422, "ids[1]"),
    ("/tokenize", {"inputs": "a"}, {"Authorization": "Basic abc"}, 401, "authorization"),
]


@pytest.mark.parametrize(
    "route,body,headers,status,field", BAD, ids=[f"{b[0]}-{b[3]}-{b[4]}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_requests_get_json_errors_naming_the_field(server, http, route, body, headers, status, field):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = http.post(route, content=raw, headers={"content-type": "application/json", **(headers or {})})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    if route.startswith("/v1/"):
        assert err["param"] == field and err["type"] and err["code"] == status
        message = err["message"]
    else:
        assert r.json()["field"] == field and r.json()["error_type"]
        message = err
    if field not in ("body", "authorization"):
        assert repr(field.split("[")[0]) in message or field in message
    if status == 413 and "[" in field:
        assert field in message  # names the index
    if status == 401:
        assert r.headers.get("www-authenticate") == "Bearer"
    # ...and the server is still serving.
    ok = http.post("/v1/embeddings", json={"input": "still alive?"})
    assert ok.status_code == 200 and server.alive()


def test_task_error_lists_valid_tasks_and_other_http_errors_are_json(http):
    r = http.post("/v1/embeddings", json={"input": "a", "task": "query"})
    assert "search_query" in r.json()["error"]["message"]
    assert http.get("/v1/embeddings").status_code == 405 and "error" in http.get("/v1/embeddings").json()
    assert http.get("/no/such/route").status_code == 404 and "error" in http.get("/no/such/route").json()
    # A lone surrogate (valid JSON escape, invalid Unicode) is replaced with U+FFFD, as Encoder.encode does.
    r = http.post(
        "/v1/embeddings",
        content=json.dumps({"input": ["lone \ud800 surrogate"]}).encode(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200


def test_serve_without_the_extra_names_it(monkeypatch, capsys, runtime_artifact):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # makes `import uvicorn` raise ImportError
    assert main(["serve", str(runtime_artifact)]) == 2
    err = capsys.readouterr().err
    assert "rosberta-onnx[serve]" in err and "uvicorn" in err


def test_not_ready_until_loaded_and_liveness_meanwhile(runtime_artifact):
    from starlette.testclient import TestClient

    from rosberta_serve import ServeConfig, create_app

    # Without entering the client's context the lifespan (and so the model load) never runs.
    client = TestClient(create_app(ServeConfig(model_dir=runtime_artifact, variant="fp32")))
    assert client.get("/health").status_code == 200
    r = client.get("/ready")
    assert r.status_code == 503 and r.json()["status"] == "loading"
    r = client.post("/v1/embeddings", json={"input": "a"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "loading" in r.json()["error"]["message"]
    assert client.get("/info").json()["status"] == "loading"
    # Entering it runs the lifespan: the model loads in the background and /ready turns 200.
    with TestClient(create_app(ServeConfig(model_dir=runtime_artifact, variant="fp32"))) as live:
        deadline = time.monotonic() + 60
        while live.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live.get("/ready").json() == {"status": "ready"}
        assert live.post("/embed", json={"inputs": "a"}).status_code == 200
        # A big request: JSON parsed and rendered off the event loop; same answer.
        texts = [f"{i} " + "word " * 48 for i in range(1100)]
        r = live.post("/v1/embeddings", json={"input": texts, "encoding_format": "float"})
        assert r.status_code == 200 and len(r.content) > 256 * 1024
        got = np.array([d["embedding"] for d in r.json()["data"]])
        enc = Encoder.load(runtime_artifact, variant="fp32")
        assert cos_rows(got[[0, 1099]], enc.encode([texts[0], texts[1099]])).min() >= 0.99999


def test_streams_and_keep_alive_flags_reach_the_config_and_are_checked(monkeypatch, runtime_artifact):
    import rosberta_serve
    from rosberta_serve import ServeConfig

    seen = []
    monkeypatch.setattr(rosberta_serve, "serve", lambda config, **_: seen.append(config) or 0)
    assert main(["serve", str(runtime_artifact), "--streams", "3", "--keep-alive", "30", "--port", "0"]) == 0
    assert main(["serve", str(runtime_artifact), "--port", "0"]) == 0
    assert [c.streams for c in seen] == [3, None]  # None: the server's default
    assert [c.engine_streams for c in seen] == [3, 2]  # what the encoder is loaded with
    assert [c.keep_alive_s for c in seen] == [30, 75]  # longer than client pools' idle expiry by default
    with pytest.raises(ValueError, match="streams must be >= 1"):
        ServeConfig(model_dir=runtime_artifact, streams=0)
    with pytest.raises(ValueError, match="keep_alive_s must be a positive integer"):
        ServeConfig(model_dir=runtime_artifact, keep_alive_s=0)


def test_spinning_flag_reaches_the_onnx_runtime_session(monkeypatch, runtime_artifact):
    from starlette.testclient import TestClient

    import rosberta_serve

    seen = []
    monkeypatch.setattr(rosberta_serve, "serve", lambda config, **_: seen.append(config) or 0)
    assert main(["serve", str(runtime_artifact), "--variant", "fp32", "--spinning", "--port", "0"]) == 0
    assert main(["serve", str(runtime_artifact), "--variant", "fp32", "--port", "0"]) == 0
    assert [c.spinning for c in seen] == [True, False]  # off unless asked: spinning burns CPU while idle
    for config in seen:
        app = rosberta_serve.create_app(config)
        with TestClient(app) as live:
            deadline = time.monotonic() + 60
            while live.get("/ready").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert live.get("/info").json()["spinning"] is config.spinning
            opts = app.state.rosberta.encoder._session._session.get_session_options()
            assert opts.get_session_config_entry("session.intra_op.allow_spinning") == ("1" if config.spinning else "0")


def test_the_openvino_engine_serves_the_same_api(tiny_artifact):
    """``serve --variant int8-openvino``: the optional engine behind the real server, answering concurrent clients."""
    from concurrent.futures import ThreadPoolExecutor

    from rosberta_onnx.manifest import Manifest
    from rosberta_onnx.openvino_engine import openvino_available

    if not openvino_available() or "int8-openvino" not in Manifest.read(tiny_artifact).variants:
        pytest.skip("needs openvino and an artifact with the int8-openvino variant (the full CI environment)")
    want = Encoder.load(tiny_artifact, variant="int8-openvino").encode(TEXTS[:4], task="search_query")
    with LiveServer(tiny_artifact, "--variant", "int8-openvino", "--max-wait-ms", "2") as srv:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            info = client.get("/info").json()
            assert (info["model_dtype"], info["providers"]) == ("int8-openvino", ["OpenVINO:CPU"])
            # the server splits batches in two where there are two threads; a plain Encoder.load stays lean
            assert info["streams"] == min(2, physical_cores())
            assert Encoder.load(tiny_artifact, variant="int8-openvino").streams == 1

            def post(i):
                r = client.post("/embed", json={"inputs": TEXTS[i % 4], "prompt_name": "search_query"})
                assert r.status_code == 200, r.text
                return i % 4, r.json()[0]

            with ThreadPoolExecutor(8) as pool:
                got = list(pool.map(post, range(24)))
    for i, vec in got:  # batched with other clients' texts by the server, same vectors as alone
        assert cos_rows([vec], want[i : i + 1])[0] > 0.99999
