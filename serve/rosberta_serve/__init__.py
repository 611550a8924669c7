"""rosberta-serve: an OpenAI- and TEI-compatible HTTP embedding server over ``rosberta_onnx.Encoder``.

    rosberta-onnx serve models/ru-en-rosberta --port 8080          # or: ROSBERTA_API_KEY=... for auth

Routes: ``POST /v1/embeddings`` (OpenAI), ``POST /embed``, ``POST /tokenize``, ``GET /info`` (TEI),
``GET /health`` (liveness), ``GET /ready`` (model loaded and warmed up), ``GET /metrics`` (Prometheus),
``GET /v1/models``. Concurrent requests are merged into token-budgeted batches
(:mod:`rosberta_serve.batcher`). Needs the ``serve`` extra: ``pip install 'rosberta-onnx[serve]'``.

Task prefixes: the OpenAI route takes an extra field ``"task"`` (``"search_query"``,
``"search_document"``, ``"classification"``, ``"clustering"``; with the ``openai`` client:
``extra_body={"task": "search_query"}``), TEI's ``/embed`` the standard ``"prompt_name"``. Without it
texts are embedded exactly as sent, as OpenAI clients expect; RoSBERTa was trained with prefixes, so
retrieval clients should send them. Both routes truncate over-long texts to the model's 512 tokens by
default (as ``Encoder.encode`` does); send ``"truncate": false`` to get a 413 naming the input instead.
``usage.prompt_tokens`` counts the tokens the model saw (prefix and special tokens included, after
truncation).

Auth: with ``--api-key`` or ``ROSBERTA_API_KEY`` set, every route except ``/health`` and ``/ready``
needs ``Authorization: Bearer <key>`` (a Prometheus scrape config sets it with ``authorization``).
Errors are JSON naming the field at fault: 401 (key), 413 (body size, too many inputs, over-long
input with truncate=false), 422 (malformed JSON, wrong types, unknown task), 503 (loading, queue full;
with ``Retry-After``).
"""

from .config import API_KEY_ENV, ServeConfig

__all__ = ["ServeConfig", "API_KEY_ENV", "create_app", "serve"]


def create_app(config, **kwargs):
    """See :func:`rosberta_serve.app.create_app` (imported lazily: it needs starlette)."""
    from .app import create_app as _create

    return _create(config, **kwargs)


def serve(config):
    """See :func:`rosberta_serve.server.serve` (imported lazily: it needs uvicorn)."""
    from .server import serve as _serve

    return _serve(config)
